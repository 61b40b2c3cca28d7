/**
 * The compiled-in validators, by name. To add your own, write it as in
 * ./gps_fix.ts and add it to `builtin_validators` below.
 */
import { InterlogError } from "../lib/errors.ts";
import { cbor } from "./cbor.ts";
import { gps_fix } from "./gps_fix.ts";
import { json } from "./json.ts";
import { max_size } from "./max_size.ts";
import { utf8 } from "./utf8.ts";
import type { ValidationContext, Validator, ValidatorDefinition } from "./validator.ts";

export const builtin_validators: readonly ValidatorDefinition[] = [max_size, utf8, json, cbor, gps_fix];

/** One configured use of a validator: its name and the options as written in config. */
export interface ValidatorSpec {
  name: string;
  options: Record<string, unknown>;
}

/** All the configured validators of one path (append or sync), run in order; the first failure wins. */
export type ComposedValidator = Validator & { readonly names: readonly string[] };

export class ValidatorRegistry {
  private readonly by_name = new Map<string, ValidatorDefinition>();

  constructor(definitions: readonly ValidatorDefinition[]) {
    for (const definition of definitions) {
      if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(definition.name)) {
        throw new InterlogError("BAD_ARGUMENT", `validator name "${definition.name}" must be lowercase words joined by "-"`);
      }
      if (this.by_name.has(definition.name)) throw new InterlogError("BAD_ARGUMENT", `validator "${definition.name}" is registered twice`);
      this.by_name.set(definition.name, definition);
    }
  }

  names(): string[] {
    return [...this.by_name.keys()];
  }

  get(name: string): ValidatorDefinition | undefined {
    return this.by_name.get(name);
  }

  definitions(): ValidatorDefinition[] {
    return [...this.by_name.values()];
  }

  unknown_name_message(name: string): string {
    return `unknown validator "${name}"; known validators: ${this.names().join(", ")}`;
  }

  /** Creates one validator; CONFIG_INVALID for an unknown name or bad options. */
  create(spec: ValidatorSpec): Validator {
    const definition = this.by_name.get(spec.name);
    if (definition === undefined) throw new InterlogError("CONFIG_INVALID", this.unknown_name_message(spec.name), { name: spec.name });
    const parsed = definition.options.safeParse(spec.options);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${[spec.name, ...issue.path].join(".")}: ${issue.message}`);
      throw new InterlogError("CONFIG_INVALID", `bad options for validator "${spec.name}": ${problems.join("; ")}`, { name: spec.name });
    }
    return definition.create(parsed.data);
  }

  /** Turns a config list (`validators.append` or `validators.sync`) into one composed validator. */
  compose(specs: readonly ValidatorSpec[]): ComposedValidator {
    const parts = specs.map((spec) => ({ name: spec.name, validate: this.create(spec) }));
    // null when every validator accepts; else `NAME: message` of the first that rejects.
    const check: Validator = (payload: Uint8Array, ctx: ValidationContext) => {
      for (const part of parts) {
        let message: string | null;
        try {
          message = part.validate(payload, ctx);
        } catch (err) {
          // A crashing validator must not take the replica (or sync) down: reject instead.
          message = `validator failed: ${(err as Error)?.message ?? String(err)}`;
        }
        if (message !== null) return `${part.name}: ${message === "" ? "rejected (no reason given)" : message}`;
      }
      return null;
    };
    return Object.assign(check, { names: parts.map((part) => part.name) });
  }
}

export const validator_registry = new ValidatorRegistry(builtin_validators);

/** Shorthand for `validator_registry.compose(specs)`. */
export function build_validator(specs: readonly ValidatorSpec[]): ComposedValidator {
  return validator_registry.compose(specs);
}
