export {
  createGenerator,
  type Generator,
  GeneratorInputError,
  type GeneratorState,
  type NoiseSource,
} from "./generator.js";
export { Mt19937, type Mt19937State } from "./mt19937.js";
