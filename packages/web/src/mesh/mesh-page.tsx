import type { GetMeshStatusResponse } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { useContext, useState } from "preact/hooks";
import { callError, describe } from "../api/call-error.js";
import { api } from "../api/clients.js";
import { AppContext } from "../app-context.js";
import { Alert } from "../ui/alert.js";
import { bytes } from "../ui/format.js";
import { Page } from "../ui/page.js";
import { usePoll } from "../ui/use-poll.js";

/** Mesh: every instructor's replicas with their health, latency, queue, warm models and device memory. */
export function MeshPage(props: { active: boolean; onStatus: (status: GetMeshStatusResponse) => void }) {
  const { authEpoch } = useContext(AppContext);
  const [status, setStatus] = useState<GetMeshStatusResponse>();
  const [error, setError] = useState<string>();
  usePoll(
    props.active,
    2000,
    async (signal) => {
      try {
        const s = await api.mesh.getMeshStatus({}, { signal, timeoutMs: 10_000 });
        setStatus(s);
        props.onStatus(s);
        setError(undefined);
      } catch (err) {
        if (!signal.aborted) setError(describe(callError(err)));
      }
    },
    [authEpoch],
  );
  return (
    <Page title="Mesh">
      <Alert text={error} />
      {status ? (
        <p>
          {status.sessionsRunning} sessions running, {status.sessionsQueued} queued
        </p>
      ) : error ? null : (
        <p class="loading">Loading mesh status…</p>
      )}
      <ul class="cards" aria-label="Replicas">
        {status?.instructors.map((r) => {
          const total = Number(r.deviceMemoryTotalBytes);
          const used = total - Number(r.deviceMemoryFreeBytes);
          const healthy = r.health === "SERVING";
          return (
            <li key={`${r.domain}-${r.address}`} class={`card ${healthy ? "healthy" : "unhealthy"}`}>
              <div class="card-head">
                <strong>{r.domain}</strong>
                <code>{r.address}</code>
                <span class="badge">{r.health.toLowerCase().replace(/_/g, " ")}</span>
              </div>
              <dl class="facts">
                <dt>Latency</dt>
                <dd>{r.latencyMs.toFixed(1)} ms</dd>
                {r.deviceId ? (
                  <>
                    <dt>Device</dt>
                    <dd>{r.deviceId}</dd>
                  </>
                ) : null}
                {r.domain === "inference" ? (
                  <>
                    <dt>Queue</dt>
                    <dd>
                      {r.queueRunning} running, {r.queueQueued} queued
                    </dd>
                    <dt>Warm models</dt>
                    <dd>{r.warmModels.length > 0 ? r.warmModels.join(", ") : "none"}</dd>
                  </>
                ) : null}
                {total > 0 ? (
                  <>
                    <dt>Device memory</dt>
                    <dd>
                      <meter
                        min={0}
                        max={total}
                        value={used}
                        aria-label={`Device memory used on ${r.domain} ${r.address}`}
                      />{" "}
                      {bytes(used)} of {bytes(total)} used
                      {r.deviceMemoryLeasedBytes > 0n ? `, ${bytes(r.deviceMemoryLeasedBytes)} leased` : ""}
                    </dd>
                  </>
                ) : null}
              </dl>
              {r.error ? <p class="field-error">{r.error}</p> : null}
            </li>
          );
        })}
      </ul>
    </Page>
  );
}
