import { controlProps, Field } from "../ui/field.js";
import { SAMPLERS, type SpecValues, schedulesFor } from "./spec-form.js";

export type SpecErrors = Partial<Record<keyof SpecValues, string>>;

/**
 * The inputs of a GenerationSpec, shared by Generate and Batches. Generate adds the adapter pickers and
 * ControlNet units beside them (`adapter-pickers.tsx`, `control-net-units.tsx`); LoRA tags are prompt text.
 */
export function SpecFields(props: {
  idPrefix: string;
  values: SpecValues;
  errors: SpecErrors;
  onChange: (patch: Partial<SpecValues>) => void;
  models: readonly string[];
  show: { strength: boolean; count: boolean; preview: boolean; prompt: boolean };
}) {
  const { values: v, errors: e, onChange } = props;
  const id = (name: keyof SpecValues) => `${props.idPrefix}-${name}`;
  const text = (name: keyof SpecValues) => ({
    ...controlProps(id(name), e[name]),
    value: String(v[name]),
    onInput: (ev: Event) => onChange({ [name]: (ev.currentTarget as HTMLInputElement).value }),
  });
  return (
    <>
      {props.show.prompt ? (
        <Field
          id={id("prompt")}
          label="Prompt"
          error={e.prompt}
          wide
          hint="AUTOMATIC1111 syntax: (word:1.2), [word], BREAK; LoRA as <lora:name:0.8>"
        >
          <textarea rows={3} {...text("prompt")} />
        </Field>
      ) : null}
      <Field id={id("negativePrompt")} label="Negative prompt" error={e.negativePrompt} wide>
        <textarea rows={2} {...text("negativePrompt")} />
      </Field>
      <div class="field-grid">
        <Field id={id("model")} label="Model" error={e.model}>
          <input
            type="text"
            list={`${props.idPrefix}-models`}
            autocomplete="off"
            placeholder="default"
            {...text("model")}
          />
          <datalist id={`${props.idPrefix}-models`}>
            {props.models.map((m) => (
              <option key={m} value={m} />
            ))}
          </datalist>
        </Field>
        <Field id={id("sampler")} label="Sampler" error={e.sampler}>
          <select
            {...controlProps(id("sampler"), e.sampler)}
            value={v.sampler}
            onChange={(ev) => {
              const sampler = ev.currentTarget.value;
              // A schedule the new sampler does not take goes back to its default.
              onChange({ sampler, ...(schedulesFor(sampler).includes(v.schedule) ? {} : { schedule: "" }) });
            }}
          >
            <option value="">Default</option>
            {SAMPLERS.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </Field>
        <Field id={id("schedule")} label="Schedule" error={e.schedule}>
          <select
            {...controlProps(id("schedule"), e.schedule)}
            value={v.schedule}
            onChange={(ev) => onChange({ schedule: ev.currentTarget.value })}
          >
            <option value="">Default</option>
            {schedulesFor(v.sampler).map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </Field>
        <Field id={id("steps")} label="Steps" error={e.steps}>
          <input type="number" inputMode="numeric" step={1} {...text("steps")} />
        </Field>
        <Field id={id("width")} label="Width" error={e.width}>
          <input type="number" inputMode="numeric" step={8} {...text("width")} />
        </Field>
        <Field id={id("height")} label="Height" error={e.height}>
          <input type="number" inputMode="numeric" step={8} {...text("height")} />
        </Field>
        <Field id={id("cfg")} label="CFG scale" error={e.cfg}>
          <input type="number" inputMode="decimal" step={0.5} {...text("cfg")} />
        </Field>
        <Field id={id("seed")} label="Seed" error={e.seed}>
          <input type="text" inputMode="numeric" autocomplete="off" placeholder="random" {...text("seed")} />
        </Field>
        {props.show.count ? (
          <Field id={id("count")} label="Images" error={e.count}>
            <input type="number" inputMode="numeric" step={1} {...text("count")} />
          </Field>
        ) : null}
        {props.show.strength ? (
          <Field id={id("strength")} label="Strength" error={e.strength}>
            <input type="number" inputMode="decimal" step={0.05} {...text("strength")} />
          </Field>
        ) : null}
      </div>
      {props.show.preview ? (
        <div class="check">
          <input
            type="checkbox"
            id={id("preview")}
            checked={v.preview}
            onChange={(ev) => onChange({ preview: ev.currentTarget.checked })}
          />
          <label for={id("preview")}>Live preview while it runs</label>
        </div>
      ) : null}
    </>
  );
}
