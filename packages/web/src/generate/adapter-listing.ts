import { type Adapter, AdapterKind, ModelFamily } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { useEffect, useState } from "preact/hooks";
import { callError, describe } from "../api/call-error.js";
import { api } from "../api/clients.js";

export interface AdapterListing {
  readonly loras: readonly Adapter[];
  readonly embeddings: readonly Adapter[];
  readonly controlNets: readonly Adapter[];
  /** Why the listing could not be read ("CODE: message"), or undefined. */
  readonly error: string | undefined;
  readonly loading: boolean;
  /** Reads the listing again (files added to MODELS_DIR since). */
  reload(): void;
}

const FAMILY_NAMES: Partial<Record<ModelFamily, string>> = {
  [ModelFamily.SDXL]: "SDXL",
  [ModelFamily.SDXL_REFINER]: "SDXL refiner",
  [ModelFamily.SD1]: "SD 1.x",
  [ModelFamily.SD2]: "SD 2.x",
};

/** How a picker names an adapter: its name and, where its shapes tell it, the base model it is for. */
export function adapterLabel(adapter: Adapter): string {
  const family = FAMILY_NAMES[adapter.family];
  return family ? `${adapter.name} (${family})` : adapter.name;
}

/** The mesh's LoRAs, embeddings and ControlNets (ListAdapters through the orchestrator), read again on sign-in. */
export function useAdapterListing(authEpoch: number): AdapterListing {
  const [reads, setReads] = useState(0);
  const [listing, setListing] = useState<Omit<AdapterListing, "reload">>({
    loras: [],
    embeddings: [],
    controlNets: [],
    error: undefined,
    loading: true,
  });
  useEffect(() => {
    const abort = new AbortController();
    setListing((l) => ({ ...l, loading: true }));
    // Hashing files a replica has not seen yet reads them: a generous deadline.
    api.models.listAdapters({}, { signal: abort.signal, timeoutMs: 120_000 }).then(
      ({ adapters }) =>
        setListing({
          loras: adapters.filter((a) => a.kind === AdapterKind.LORA),
          embeddings: adapters.filter((a) => a.kind === AdapterKind.EMBEDDING),
          controlNets: adapters.filter((a) => a.kind === AdapterKind.CONTROLNET),
          error: undefined,
          loading: false,
        }),
      (err) => {
        if (!abort.signal.aborted)
          setListing((l) => ({ ...l, error: describe(callError(err)), loading: false }));
      },
    );
    return () => abort.abort();
  }, [authEpoch, reads]);
  return { ...listing, reload: () => setReads((n) => n + 1) };
}
