import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { z } from "zod";
import { InterlogError } from "../lib/errors.ts";
import type { Config } from "./config.ts";
import { config_error_map } from "./messages.ts";
import { config_file_schema, config_sections, type ConfigFile, parse_listen, replication_limit_keys, reserve_own_share_default, tls_protocols } from "./schema.ts";
import { parse_yaml, type SourcePosition, type YamlSource } from "./yaml_source.ts";

/** One thing wrong with a config file, where it is and what was expected. */
export interface ConfigProblem extends SourcePosition {
  /** Key path such as `mqtt.max_packet` or `validators.append[0]`; "" for the whole file. */
  key: string;
  message: string;
}

/** Config files are small; a bigger one is a mistake (a log file passed by accident). */
export const config_file_max_bytes = 1024 * 1024;

export type Environment = Record<string, string | undefined>;

/**
 * Reads, checks and resolves a YAML config file. Every problem throws
 * InterlogError CONFIG_INVALID whose message lists each as
 * `FILE:LINE:COLUMN: KEY.PATH: what was expected`.
 */
export function load_config(file: string, env: Environment = process.env): Config {
  const text = read_config_text(file);
  const source = parse_yaml(text);
  if (source.syntax_problems.length > 0) {
    fail(file, source.syntax_problems.map((p) => ({ line: p.line, column: p.column, key: format_key_path(p.path), message: `YAML syntax: ${p.message}` })));
  }
  const data = drop_empty_sections(source.data);
  const parsed = config_file_schema.safeParse(data, { error: config_error_map });
  if (!parsed.success) fail(file, parsed.error.issues.flatMap((issue) => problems_of(issue, source)));
  const problems: ConfigProblem[] = [];
  const config = resolve(file, parsed.data, env, (key_path, message) => problems.push({ ...source.locate(key_path), key: format_key_path(key_path), message }));
  if (problems.length > 0) fail(file, problems);
  return config;
}

function read_config_text(file: string): string {
  let bytes: Buffer;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new Error("not a regular file");
    if (stat.size > config_file_max_bytes) throw new Error(`${stat.size} bytes is too big for a config file`);
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new InterlogError("CONFIG_INVALID", `${file}: cannot read the config file: ${(err as Error).message}`, { file });
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InterlogError("CONFIG_INVALID", `${file}: not a text file (not UTF-8); expected YAML`, { file });
  }
}

/** `log:` with nothing under it means all defaults (and `mqtt:` means offline), as if the key were absent. */
function drop_empty_sections(data: unknown): unknown {
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) return data;
  const copy: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const section of config_sections) if (copy[section] === null) delete copy[section];
  return copy;
}

/** Secret keys people try first, and where the secret goes instead. */
const secret_key_hints: Record<string, string> = {
  password: "put the password in an environment variable and name it in password_env",
  token: "put the token in an environment variable and name it in token_env",
};

function problems_of(issue: z.core.$ZodIssue, source: YamlSource): ConfigProblem[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => {
      const key_path = [...issue.path, key];
      const hint = secret_key_hints[key];
      return { ...source.locate(key_path), key: format_key_path(key_path), message: `unknown key "${key}"; ${hint ?? issue.message}` };
    });
  }
  return [{ ...source.locate(issue.path), key: format_key_path(issue.path), message: issue.message }];
}

export function format_key_path(key_path: readonly PropertyKey[]): string {
  let text = "";
  for (const segment of key_path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

function fail(file: string, problems: ConfigProblem[]): never {
  const sorted = [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
  const lines = sorted.map((p) => `${file}:${p.line}:${p.column}: ${p.key === "" ? "" : `${p.key}: `}${p.message}`);
  const message = lines.length === 1 ? lines[0] : `${lines.length} problems in ${file}:\n${lines.join("\n")}`;
  throw new InterlogError("CONFIG_INVALID", message, { file, problems: sorted });
}

type Report = (key_path: PropertyKey[], message: string) => void;

function read_secret(env: Environment, variable: string, key_path: PropertyKey[], report: Report): string | null {
  const value = env[variable];
  if (value === undefined || value === "") {
    report(key_path, `the environment variable ${variable} is not set (or empty); set it to the secret, or remove ${format_key_path(key_path)}`);
    return null;
  }
  return value;
}

/** A name rather than an IP address (IPv6 hosts hold colons). */
function is_host_name(host: string): boolean {
  return !host.includes(":") && !/^\d+(\.\d+){3}$/.test(host);
}

function resolve(file: string, raw: ConfigFile, env: Environment, report: Report): Config {
  const listen = parse_listen(raw.admin.listen);
  if (listen === null) throw new InterlogError("CONFIG_INVALID", `${file}: admin.listen: unparsable`); // the schema checked it
  const mqtt = raw.mqtt;
  return {
    file,
    name: raw.name ?? os.hostname(),
    data_dir: path.resolve(raw.data_dir),
    log: { segment_size_bytes: raw.log.segment_size, sync: raw.log.sync, sync_interval_ms: raw.log.sync_interval },
    mqtt:
      mqtt === undefined
        ? null
        : {
            url: typeof mqtt.url === "string" ? mqtt.url : mqtt.url[0],
            urls: typeof mqtt.url === "string" ? [mqtt.url] : mqtt.url,
            protocol_version: (mqtt.protocol ?? (mqtt.preset === "rabbitmq" ? "3.1.1" : "5")) === "5" ? 5 : 4,
            tls: tls_protocols.some((protocol) => (typeof mqtt.url === "string" ? mqtt.url : mqtt.url[0]).startsWith(`${protocol.slice(0, -1)}://`)),
            prefix: mqtt.prefix,
            username: mqtt.username ?? null,
            password: mqtt.password_env === undefined ? null : read_secret(env, mqtt.password_env, ["mqtt", "password_env"], report),
            max_packet_bytes: mqtt.max_packet,
            preset: mqtt.preset,
            ca_file: mqtt.ca_file === undefined ? null : path.resolve(mqtt.ca_file),
            cert_file: mqtt.cert_file === undefined ? null : path.resolve(mqtt.cert_file),
            key_file: mqtt.key_file === undefined ? null : path.resolve(mqtt.key_file),
          },
    replication: {
      pull: raw.replication.pull.length === 1 && raw.replication.pull[0] === "*" ? "*" : [...new Set(raw.replication.pull)],
      peer_events_max_bytes: raw.replication.peer_events_max,
      ...Object.fromEntries(Object.entries(replication_limit_keys).map(([key, option]) => [option, raw.replication[key as keyof typeof replication_limit_keys]])),
    },
    admin: {
      listen: raw.admin.listen,
      host: listen.host,
      port: listen.port,
      token: raw.admin.token_env === undefined ? null : read_secret(env, raw.admin.token_env, ["admin", "token_env"], report),
      allowed_hosts: [...new Set([...(is_host_name(listen.host) ? [listen.host.toLowerCase()] : []), ...raw.admin.allowed_hosts])],
      app: raw.admin.app,
      app_dir: raw.admin.app_dir === undefined ? null : path.resolve(raw.admin.app_dir),
    },
    validators: { append: raw.validators.append, sync: raw.validators.sync },
    trust: { replicas: raw.trust.replicas ?? null },
    retention:
      raw.retention === undefined
        ? null
        : {
            max_bytes: raw.retention.max_bytes,
            policy: raw.retention.policy,
            upstreams: raw.retention.upstreams === undefined ? null : [...new Set(raw.retention.upstreams)],
            reserve_own_bytes: raw.retention.reserve_own ?? Math.floor(raw.retention.max_bytes * reserve_own_share_default),
          },
  };
}
