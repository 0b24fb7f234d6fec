import type { WorkflowInput } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { useState } from "preact/hooks";
import { encodingOf } from "../images/image-url.js";
import { controlProps, Field } from "../ui/field.js";
import type { ImageChoice } from "./draft.js";
import { MaskPainter } from "./mask-painter.js";

/** The workflow's image inputs: each one uploaded or sent from a result or the gallery; a mask is painted. */
export function ImageInputs(props: {
  idPrefix: string;
  inputs: readonly WorkflowInput[];
  images: Readonly<Record<string, ImageChoice>>;
  errors: Readonly<Record<string, string | undefined>>;
  onChange: (name: string, choice: ImageChoice | undefined) => void;
}) {
  const wanted = props.inputs.filter((i) => i.name !== "spec");
  const [uploadError, setUploadError] = useState<Record<string, string>>({});
  if (wanted.length === 0) return null;
  const base = props.images.image;
  return (
    <div class="image-inputs">
      {wanted.map((input) => {
        const id = `${props.idPrefix}-image-${input.name}`;
        const chosen = props.images[input.name];
        const error = props.errors[input.name] ?? uploadError[input.name];
        if (input.name === "mask") {
          return base ? (
            <MaskPainter
              key={input.name}
              idPrefix={props.idPrefix}
              image={base}
              error={error}
              onMask={(mask) => props.onChange("mask", mask)}
            />
          ) : (
            <p key={input.name} class={error ? "field-error" : "hint"} role={error ? "alert" : undefined}>
              {error ?? "Choose an image first, then paint its mask."}
            </p>
          );
        }
        return (
          <Field
            key={input.name}
            id={id}
            label={`${capitalize(input.name)}${input.required ? "" : " (optional)"}: ${input.description}`}
            error={error}
            wide
          >
            {chosen ? (
              <div class="chosen-image">
                <img src={chosen.url} alt={`${input.name}: ${chosen.label}`} />
                <span>
                  {chosen.label}, {chosen.width}×{chosen.height}
                </span>
                <button type="button" onClick={() => props.onChange(input.name, undefined)}>
                  Remove {input.name}
                </button>
              </div>
            ) : null}
            <input
              type="file"
              accept="image/png,image/jpeg,image/webp"
              {...controlProps(id, error)}
              onChange={async (ev) => {
                const file = ev.currentTarget.files?.[0];
                if (!file) return;
                try {
                  props.onChange(input.name, await uploaded(file, `images.${input.name}`));
                  setUploadError((e) => ({ ...e, [input.name]: "" }));
                } catch (err) {
                  setUploadError((e) => ({ ...e, [input.name]: (err as Error).message }));
                }
              }}
            />
          </Field>
        );
      })}
    </div>
  );
}

async function uploaded(file: File, field: string): Promise<ImageChoice> {
  const encoding = encodingOf(file.type);
  if (encoding === undefined)
    throw new Error(`${field}: must be a PNG, JPEG or WebP file, got ${file.type || "?"}`);
  const bitmap = await createImageBitmap(file).catch(() => {
    throw new Error(`${field}: ${file.name.slice(0, 40)} could not be read as an image`);
  });
  const { width, height } = bitmap;
  bitmap.close();
  const data = new Uint8Array(await file.arrayBuffer());
  return {
    url: URL.createObjectURL(file),
    width,
    height,
    label: `uploaded ${file.name.slice(0, 40)}`,
    input: { source: { case: "image", value: { encoding, data, width, height } } },
  };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
