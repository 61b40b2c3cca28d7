import { z } from "zod";

export { z };
export { duration, size } from "../config/units_schema.ts";

/** Where an event is being checked: a local append, or an event arriving from a peer. */
export type ValidationKind = "append" | "sync";

/** What a validator knows about the event besides its payload. */
export interface ValidationContext {
  kind: ValidationKind;
  /** Replica id of the event's writer (16 hex digits). */
  origin: string;
  /** The origin's sequence number of this event (the seq it gets, for an append). */
  seq: number;
  /** The origin's wall clock when the event was appended, in ms since the epoch. */
  time_ms: number;
}

/**
 * A validator: returns null when the payload is acceptable, or a message
 * saying what is wrong with it (shown to the appending caller, or stored in
 * the quarantine for a synced event). Must not throw for bad input; a throw
 * is treated as a rejection.
 */
export type Validator = (payload: Uint8Array, ctx: ValidationContext) => string | null;

/**
 * A named, compiled-in validator. `options` is a zod object schema for the
 * options config may give it; when every option has a default, config may
 * name the validator without options.
 */
export interface ValidatorDefinition<Options extends z.ZodType = z.ZodType> {
  name: string;
  summary: string;
  options: Options;
  /** Called once per configured use; a validator may keep state in its closure. */
  create(options: z.output<Options>): Validator;
}

/** Declares a validator; keeps the options type of `create` tied to its schema. */
export function define_validator<Options extends z.ZodType>(definition: ValidatorDefinition<Options>): ValidatorDefinition {
  return definition as unknown as ValidatorDefinition;
}

/** No options. */
export const no_options = z.strictObject({});
