import type { LogEvent } from "../log/log_event.ts";

/** The JSON shape of an event in CLI output and the HTTP API. */
export interface EventJson {
  pos: number;
  id: string;
  origin: string;
  seq: number;
  time: number;
  payload: string;
  rejected?: true;
}

export function event_json(event: LogEvent): EventJson {
  const json: EventJson = {
    pos: event.pos,
    id: event.id,
    origin: event.origin,
    seq: event.seq,
    time: event.time_ms,
    payload: Buffer.from(event.payload.buffer, event.payload.byteOffset, event.payload.byteLength).toString("base64"),
  };
  if (event.rejected) json.rejected = true;
  return json;
}
