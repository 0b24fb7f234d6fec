import { type ConfigOf, type Logger, type RunningService, startGrpcService } from "@dmesh/runtime";
import type { postprocessSettings } from "./config.js";
import { PostprocessHandler } from "./postprocess-handler.js";
import { routes } from "./routes.js";

export type PostprocessConfig = ConfigOf<typeof postprocessSettings>;

/** Starts the postprocess service; it has no model to wait for, so it is ready once listening. */
export async function startPostprocess(config: PostprocessConfig, logger: Logger): Promise<RunningService> {
  const service = await startGrpcService({
    name: "postprocess",
    host: config.host,
    port: config.port,
    logger,
    maxMessageBytes: config.maxMessageBytes,
    shutdownGraceMs: config.shutdownGraceMs,
    registrations: routes(new PostprocessHandler({ maxPixels: config.maxInputPixels })),
  });
  service.health.setReady(true);
  return service;
}
