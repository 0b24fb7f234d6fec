import { useState } from "preact/hooks";
import { Alert } from "../ui/alert.js";
import { controlProps, Field } from "../ui/field.js";
import { type AdapterListing, adapterLabel } from "./adapter-listing.js";
import { appendWord, withLoraTag } from "./prompt-tags.js";

/**
 * LoRA and embedding pickers from the mesh's listing. As in AUTOMATIC1111 they edit the prompt: a LoRA adds
 * `<lora:name:weight>` (a second pick of the same LoRA changes its weight), an embedding adds its name to the
 * prompt or the negative prompt. The text stays the one truth of what a generation uses, and can be copied.
 */
export function AdapterPickers(props: {
  idPrefix: string;
  listing: AdapterListing;
  prompt: string;
  negativePrompt: string;
  onPrompts: (patch: { prompt?: string; negativePrompt?: string }) => void;
}) {
  const { listing, idPrefix } = props;
  const [lora, setLora] = useState("");
  const [weight, setWeight] = useState("1");
  const [embedding, setEmbedding] = useState("");
  const [errors, setErrors] = useState<{ lora?: string; weight?: string; embedding?: string }>({});
  const loraName = lora || listing.loras[0]?.name || "";
  const embeddingName = embedding || listing.embeddings[0]?.name || "";

  const addLora = () => {
    const w = Number(weight);
    if (weight.trim() === "" || !Number.isFinite(w)) {
      setErrors({ weight: `LoRA weight: must be a number, got "${weight.slice(0, 20)}"` });
      return;
    }
    if (!loraName) {
      setErrors({ lora: "LoRA: choose one first" });
      return;
    }
    setErrors({});
    props.onPrompts({ prompt: withLoraTag(props.prompt, loraName, w) });
  };
  const addEmbedding = (to: "prompt" | "negativePrompt") => {
    if (!embeddingName) {
      setErrors({ embedding: "Embedding: choose one first" });
      return;
    }
    setErrors({});
    props.onPrompts({ [to]: appendWord(props[to], embeddingName) });
  };

  return (
    <fieldset class="adapters">
      <legend>LoRAs and embeddings</legend>
      <Alert text={listing.error && `Adapter listing: ${listing.error}`} />
      {listing.loading ? <p class="hint">Loading the adapter listing…</p> : null}
      <button type="button" class="reload-adapters" disabled={listing.loading} onClick={listing.reload}>
        Reload LoRAs, embeddings and ControlNets
      </button>
      {!listing.loading && !listing.error && listing.loras.length + listing.embeddings.length === 0 ? (
        <p class="hint">No LoRAs or embeddings in the mesh's MODELS_DIR.</p>
      ) : null}
      {listing.loras.length > 0 ? (
        <div class="picker-row">
          <Field id={`${idPrefix}-lora`} label="LoRA" error={errors.lora}>
            <select
              {...controlProps(`${idPrefix}-lora`, errors.lora)}
              value={loraName}
              onChange={(ev) => setLora(ev.currentTarget.value)}
            >
              {listing.loras.map((a) => (
                <option key={a.name} value={a.name}>
                  {adapterLabel(a)}
                </option>
              ))}
            </select>
          </Field>
          <Field id={`${idPrefix}-lora-weight`} label="LoRA weight" error={errors.weight}>
            <input
              type="number"
              inputMode="decimal"
              step={0.05}
              {...controlProps(`${idPrefix}-lora-weight`, errors.weight)}
              value={weight}
              onInput={(ev) => setWeight(ev.currentTarget.value)}
            />
          </Field>
          <button type="button" onClick={addLora}>
            Add LoRA to prompt
          </button>
        </div>
      ) : null}
      {listing.embeddings.length > 0 ? (
        <div class="picker-row">
          <Field id={`${idPrefix}-embedding`} label="Embedding" error={errors.embedding}>
            <select
              {...controlProps(`${idPrefix}-embedding`, errors.embedding)}
              value={embeddingName}
              onChange={(ev) => setEmbedding(ev.currentTarget.value)}
            >
              {listing.embeddings.map((a) => (
                <option key={a.name} value={a.name}>
                  {adapterLabel(a)}
                </option>
              ))}
            </select>
          </Field>
          <button type="button" onClick={() => addEmbedding("prompt")}>
            Add to prompt
          </button>
          <button type="button" onClick={() => addEmbedding("negativePrompt")}>
            Add to negative prompt
          </button>
        </div>
      ) : null}
    </fieldset>
  );
}
