/** The postprocess service as its `main` starts it, on a free port that it reports over IPC. */
import { postprocessSettings, startPostprocess } from "@dmesh/postprocess";
import { createLogger, loadConfig } from "@dmesh/runtime";

const config = loadConfig(postprocessSettings, { ...process.env, PORT: "0" }, []);
const service = await startPostprocess(config, createLogger("postprocess", config.logLevel));
// Never outlive the bench that started us.
process.once("disconnect", () => process.exit(0));
process.send?.({ port: service.port });
