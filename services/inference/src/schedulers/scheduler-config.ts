/**
 * scheduler_config.json options: each scheduler declares its keys with diffusers' defaults; `parseConfig`
 * takes a raw JSON object, ignores keys the scheduler does not know (as diffusers' `from_config` does, so a
 * model's config can seed any compatible scheduler), treats `null` as the default, and rejects bad values with
 * an error naming the key.
 */

/** A configuration value or call input a scheduler cannot use; `field` names the key or argument. */
export class SchedulerInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "SchedulerInputError";
  }
}

interface OptionBase {
  readonly description: string;
}
export interface IntegerOption extends OptionBase {
  readonly type: "integer";
  readonly default: number;
  readonly min: number;
  readonly max?: number;
}
export interface NumberOption extends OptionBase {
  readonly type: "number";
  readonly default: number;
  readonly min?: number;
  readonly max?: number;
}
export interface OptionalNumberOption extends OptionBase {
  readonly type: "number?";
  readonly default: null;
  readonly min?: number;
}
export interface BooleanOption extends OptionBase {
  readonly type: "boolean";
  readonly default: boolean;
}
export interface EnumOption<V extends string = string> extends OptionBase {
  readonly type: "enum";
  readonly values: readonly V[];
  readonly default: V;
  /** Values other schedulers' configs carry that diffusers maps onto one of ours (e.g. DEIS's "logrho"). */
  readonly aliases?: Readonly<Record<string, V>>;
}
export interface NumberArrayOption extends OptionBase {
  readonly type: "number[]";
  readonly default: null;
  /** Whether `[]` is a value (diffusers' list defaults) rather than a mistake. */
  readonly allowEmpty?: boolean;
}
export type OptionSpec =
  | IntegerOption
  | NumberOption
  | OptionalNumberOption
  | BooleanOption
  | EnumOption
  | NumberArrayOption;
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S extends IntegerOption | NumberOption
  ? number
  : S extends OptionalNumberOption
    ? number | null
    : S extends BooleanOption
      ? boolean
      : S extends EnumOption<infer V>
        ? V
        : S extends NumberArrayOption
          ? readonly number[] | null
          : never;

export type ConfigOf<T extends OptionSpecs> = { readonly [K in keyof T]: ValueOf<T[K]> };

export function parseConfig<T extends OptionSpecs>(specs: T, raw: unknown): ConfigOf<T> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new SchedulerInputError("config", "must be a JSON object of scheduler_config.json keys");
  }
  const input = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const value = input[key];
    out[key] = value === undefined || value === null ? spec.default : parseValue(key, spec, value);
  }
  return out as ConfigOf<T>;
}

function parseValue(key: string, spec: OptionSpec, value: unknown): unknown {
  switch (spec.type) {
    case "integer": {
      if (typeof value !== "number" || !Number.isInteger(value)) {
        throw new SchedulerInputError(key, `must be an integer, got ${JSON.stringify(value)}`);
      }
      checkRange(key, value, spec.min, spec.max);
      return value;
    }
    case "number":
    case "number?": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new SchedulerInputError(key, `must be a finite number, got ${JSON.stringify(value)}`);
      }
      checkRange(key, value, spec.min, spec.type === "number" ? spec.max : undefined);
      return value;
    }
    case "boolean": {
      if (typeof value !== "boolean") {
        throw new SchedulerInputError(key, `must be true or false, got ${JSON.stringify(value)}`);
      }
      return value;
    }
    case "enum": {
      if (typeof value === "string") {
        if (spec.values.includes(value)) return value;
        const alias = spec.aliases?.[value];
        if (alias !== undefined) return alias;
      }
      const allowed = spec.values.map((v) => JSON.stringify(v)).join(", ");
      throw new SchedulerInputError(key, `must be one of ${allowed}, got ${JSON.stringify(value)}`);
    }
    case "number[]": {
      if (
        !Array.isArray(value) ||
        (value.length === 0 && !spec.allowEmpty) ||
        !value.every((v) => typeof v === "number" && Number.isFinite(v))
      ) {
        throw new SchedulerInputError(key, "must be a non-empty array of finite numbers");
      }
      return value as number[];
    }
  }
}

function checkRange(key: string, value: number, min: number | undefined, max: number | undefined): void {
  if (min !== undefined && value < min) throw new SchedulerInputError(key, `must be >= ${min}, got ${value}`);
  if (max !== undefined && value > max) throw new SchedulerInputError(key, `must be <= ${max}, got ${value}`);
}
