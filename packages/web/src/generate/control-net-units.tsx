import type { Adapter } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { useState } from "preact/hooks";
import { callError, describe, InputError } from "../api/call-error.js";
import { api } from "../api/clients.js";
import { encodingOf, imageUrl } from "../images/image-url.js";
import { Alert } from "../ui/alert.js";
import { controlProps, Field } from "../ui/field.js";
import { adapterLabel } from "./adapter-listing.js";
import {
  type ControlImage,
  type ControlInput,
  type ControlUnitValues,
  controlInputFor,
  newControlUnit,
  PREPROCESSORS,
  preprocessorOf,
  RESIZE_MODES,
  unitField,
} from "./control-units.js";

/** An error about one unit: the input it names (undefined: the unit as a whole) and the message. */
export interface UnitError {
  readonly input: ControlInput | undefined;
  readonly message: string;
}

interface Preview {
  readonly url?: string;
  readonly error?: UnitError;
  readonly busy?: boolean;
}

/**
 * ControlNet units, as units of AUTOMATIC1111's ControlNet extension: model, control image, preprocessor
 * (none, or canny and its thresholds), weight, start and end, resize mode, and a preview of the control map
 * that the unit's preprocessor makes at the generation size (PreprocessControl, through the orchestrator).
 */
export function ControlNetUnits(props: {
  idPrefix: string;
  units: readonly ControlUnitValues[];
  onUnits: (update: (units: readonly ControlUnitValues[]) => readonly ControlUnitValues[]) => void;
  controlNets: readonly Adapter[];
  /** From the generation: errors by unit index. */
  errors: Readonly<Record<number, UnitError>>;
  onEdited: (index: number) => void;
  size: { width: string; height: string };
}) {
  const [previews, setPreviews] = useState<Record<number, Preview>>({});
  const setPreview = (key: number, preview: Preview) => {
    setPreviews((p) => {
      const old = p[key]?.url;
      if (old && old !== preview.url && old.startsWith("blob:")) URL.revokeObjectURL(old);
      return { ...p, [key]: preview };
    });
  };

  const preview = async (unit: ControlUnitValues, index: number) => {
    if (!unit.image) {
      setPreview(unit.key, {
        error: { input: "image", message: `${unitField(index, "image")}: upload a control image` },
      });
      return;
    }
    setPreview(unit.key, { ...previews[unit.key], busy: true, error: undefined });
    try {
      const size = generationSize(props.size);
      const { controlMap } = await api.conditioning.preprocessControl(
        {
          image: unit.image.image,
          preprocessor: preprocessorOf(unit, index),
          resizeMode: unit.resizeMode,
          ...size,
        },
        { timeoutMs: 60_000 },
      );
      const url = controlMap && imageUrl(controlMap);
      if (!url) throw new Error("the control map came back empty");
      setPreview(unit.key, { url });
    } catch (err) {
      const e = callError(err);
      const at = controlInputFor(e.field, index);
      setPreview(unit.key, { error: { input: at?.input, message: describe(e) } });
    }
  };

  const edit = (index: number, patch: Partial<ControlUnitValues>) => {
    props.onEdited(index);
    props.onUnits((units) => units.map((u, i) => (i === index ? { ...u, ...patch } : u)));
  };

  return (
    <fieldset class="control-units">
      <legend>ControlNet</legend>
      {props.controlNets.length === 0 ? (
        <p class="hint">No ControlNet in the mesh's MODELS_DIR/controlnet.</p>
      ) : null}
      {props.units.map((unit, index) => {
        const id = (input: string) => `${props.idPrefix}-cn${unit.key}-${input}`;
        const shown = previews[unit.key];
        const fromRun = props.errors[index];
        const errorAt = (input: ControlInput) =>
          (fromRun?.input === input ? fromRun.message : undefined) ??
          (shown?.error?.input === input ? shown.error.message : undefined);
        const unitError = [fromRun, shown?.error].find((e) => e && e.input === undefined)?.message;
        const n = index + 1;
        return (
          <section key={unit.key} class="control-unit" aria-label={`ControlNet unit ${n}`}>
            <h3>Unit {n}</h3>
            <div class="field-grid">
              <Field id={id("model")} label={`Unit ${n} model`} error={errorAt("model")}>
                <select
                  {...controlProps(id("model"), errorAt("model"))}
                  value={unit.model}
                  onChange={(ev) => edit(index, { model: ev.currentTarget.value })}
                >
                  <option value="">Choose…</option>
                  {props.controlNets.map((a) => (
                    <option key={a.name} value={a.name}>
                      {adapterLabel(a)}
                    </option>
                  ))}
                </select>
              </Field>
              <Field id={id("preprocessor")} label={`Unit ${n} preprocessor`} error={errorAt("preprocessor")}>
                <select
                  {...controlProps(id("preprocessor"), errorAt("preprocessor"))}
                  value={unit.preprocessor}
                  onChange={(ev) => edit(index, { preprocessor: ev.currentTarget.value })}
                >
                  {PREPROCESSORS.map((p) => (
                    <option key={p} value={p}>
                      {p}
                    </option>
                  ))}
                </select>
              </Field>
              {unit.preprocessor === "canny" ? (
                <>
                  <NumberField
                    id={id("low")}
                    label={`Unit ${n} low threshold`}
                    value={unit.low}
                    error={errorAt("low")}
                    onInput={(low) => edit(index, { low })}
                  />
                  <NumberField
                    id={id("high")}
                    label={`Unit ${n} high threshold`}
                    value={unit.high}
                    error={errorAt("high")}
                    onInput={(high) => edit(index, { high })}
                  />
                  <NumberField
                    id={id("resolution")}
                    label={`Unit ${n} processor resolution`}
                    value={unit.resolution}
                    error={errorAt("resolution")}
                    onInput={(resolution) => edit(index, { resolution })}
                  />
                </>
              ) : null}
              <NumberField
                id={id("scale")}
                label={`Unit ${n} weight`}
                value={unit.scale}
                step={0.05}
                error={errorAt("scale")}
                onInput={(scale) => edit(index, { scale })}
              />
              <NumberField
                id={id("start")}
                label={`Unit ${n} start`}
                value={unit.start}
                step={0.05}
                error={errorAt("start")}
                onInput={(start) => edit(index, { start })}
              />
              <NumberField
                id={id("end")}
                label={`Unit ${n} end`}
                value={unit.end}
                step={0.05}
                error={errorAt("end")}
                onInput={(end) => edit(index, { end })}
              />
              <Field id={id("resize")} label={`Unit ${n} resize mode`} error={errorAt("resizeMode")}>
                <select
                  {...controlProps(id("resize"), errorAt("resizeMode"))}
                  value={String(unit.resizeMode)}
                  onChange={(ev) => edit(index, { resizeMode: Number(ev.currentTarget.value) })}
                >
                  {RESIZE_MODES.map(([mode, label]) => (
                    <option key={mode} value={String(mode)}>
                      {label}
                    </option>
                  ))}
                </select>
              </Field>
            </div>
            <Field id={id("image")} label={`Unit ${n} control image`} error={errorAt("image")} wide>
              <input
                type="file"
                accept="image/png,image/jpeg,image/webp"
                {...controlProps(id("image"), errorAt("image"))}
                onChange={async (ev) => {
                  const file = ev.currentTarget.files?.[0];
                  if (!file) return;
                  try {
                    const image = await controlImageOf(file, unitField(index, "image"));
                    edit(index, { image });
                    await preview({ ...unit, image }, index);
                  } catch (err) {
                    setPreview(unit.key, { error: { input: "image", message: describe(callError(err)) } });
                  }
                }}
              />
            </Field>
            <div class="control-images">
              {unit.image ? (
                <figure>
                  <img src={unit.image.url} alt={`Unit ${n} control image: ${unit.image.label}`} />
                  <figcaption>
                    {unit.image.label}, {unit.image.width}×{unit.image.height}
                  </figcaption>
                </figure>
              ) : null}
              {shown?.url ? (
                <figure>
                  <img src={shown.url} alt={`Unit ${n} control map preview`} />
                  <figcaption>Control map ({unit.preprocessor})</figcaption>
                </figure>
              ) : null}
            </div>
            <Alert text={unitError} />
            <div class="actions">
              <button type="button" disabled={shown?.busy} onClick={() => void preview(unit, index)}>
                Preview control map
              </button>
              <button
                type="button"
                onClick={() => {
                  setPreview(unit.key, {});
                  props.onUnits((units) => units.filter((u) => u.key !== unit.key));
                }}
              >
                Remove unit {n}
              </button>
            </div>
          </section>
        );
      })}
      <button
        type="button"
        onClick={() =>
          props.onUnits((units) => [
            ...units,
            newControlUnit(Math.max(0, ...units.map((u) => u.key)) + 1, props.controlNets[0]?.name),
          ])
        }
      >
        Add ControlNet unit
      </button>
    </fieldset>
  );
}

function NumberField(props: {
  id: string;
  label: string;
  value: string;
  error: string | undefined;
  step?: number;
  onInput: (value: string) => void;
}) {
  return (
    <Field id={props.id} label={props.label} error={props.error}>
      <input
        type="number"
        inputMode="decimal"
        step={props.step ?? 1}
        {...controlProps(props.id, props.error)}
        value={props.value}
        onInput={(ev) => props.onInput(ev.currentTarget.value)}
      />
    </Field>
  );
}

/** The generation size when it is one (positive multiples of 8); else 0 × 0, the preprocessor's own size. */
function generationSize(size: { width: string; height: string }): { width: number; height: number } {
  const width = Number(size.width);
  const height = Number(size.height);
  const ok = (n: number) => Number.isInteger(n) && n > 0 && n % 8 === 0;
  return ok(width) && ok(height) ? { width, height } : { width: 0, height: 0 };
}

async function controlImageOf(file: File, field: string): Promise<ControlImage> {
  const encoding = encodingOf(file.type);
  if (encoding === undefined)
    throw new InputError(field, `must be a PNG, JPEG or WebP file, got ${file.type.slice(0, 40) || "?"}`);
  const bitmap = await createImageBitmap(file).catch(() => {
    throw new InputError(field, `${file.name.slice(0, 40)} could not be read as an image`);
  });
  const { width, height } = bitmap;
  bitmap.close();
  const data = new Uint8Array(await file.arrayBuffer());
  return {
    url: URL.createObjectURL(file),
    label: `uploaded ${file.name.slice(0, 40)}`,
    width,
    height,
    image: { encoding, data, width, height },
  };
}
