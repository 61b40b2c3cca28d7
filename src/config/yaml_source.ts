import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

/** A place in a config file, 1-based, as editors show it. */
export interface SourcePosition {
  line: number;
  column: number;
}

export interface YamlSyntaxProblem extends SourcePosition {
  /** The key the problem is under, as far as the broken document tells (may be empty). */
  path: PropertyKey[];
  message: string;
}

export interface YamlSource {
  /** The document as plain data (maps become objects); undefined when it has syntax errors. */
  data: unknown;
  syntax_problems: YamlSyntaxProblem[];
  /** Where the key (or list item) at `path` is written; the nearest enclosing one when it is absent. */
  locate(path: readonly PropertyKey[]): SourcePosition;
}

/** Aliases (`*anchor`) may repeat; a bounded count stops a "billion laughs" file. */
const alias_count_max = 100;

export function parse_yaml(text: string): YamlSource {
  const line_counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: line_counter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => {
    const { line, col } = line_counter.linePos(offset);
    return { line, column: col };
  };
  const syntax_problems: YamlSyntaxProblem[] = doc.errors.map((err) => ({
    ...(err.linePos ? { line: err.linePos[0].line, column: err.linePos[0].col } : at(err.pos[0])),
    path: path_at(doc.contents, err.pos[0]),
    message: first_line(err.message),
  }));
  if (syntax_problems.length === 0) {
    // yaml would turn such a key into text and print a warning on stderr; a config key is always plain text.
    const key = collection_key(doc.contents, 0);
    if (key !== null) {
      const position = key.range ? at(key.range[0]) : at(0);
      syntax_problems.push({ ...position, path: path_at(doc.contents, key.range?.[0] ?? 0), message: "a key must be plain text, not a mapping or list" });
    }
  }
  let data: unknown;
  if (syntax_problems.length === 0) {
    try {
      data = doc.toJS({ maxAliasCount: alias_count_max });
    } catch (err) {
      syntax_problems.push({ ...at(0), path: [], message: first_line((err as Error).message) });
    }
  }
  return { data, syntax_problems, locate: (path) => locate(doc, path, at) };
}

/** Nesting beyond this is not a config (and a hostile file must not recurse without end). */
const depth_max = 64;

/** The first map key that is itself a mapping or list, or null. */
function collection_key(node: unknown, depth: number): Node | null {
  if (depth > depth_max) return null;
  if (isMap(node)) {
    for (const item of node.items) {
      if (!isPair(item)) continue;
      if (isMap(item.key) || isSeq(item.key)) return item.key as Node;
      const inner = collection_key(item.value, depth + 1);
      if (inner !== null) return inner;
    }
  } else if (isSeq(node)) {
    for (const item of node.items) {
      const inner = collection_key(item, depth + 1);
      if (inner !== null) return inner;
    }
  }
  return null;
}

function first_line(message: string): string {
  return message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
}

function locate(doc: Document, path: readonly PropertyKey[], at: (offset: number) => SourcePosition): SourcePosition {
  let node: unknown = doc.contents;
  let position = node && (node as Node).range ? at((node as Node).range![0]) : at(0);
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && (isScalar(item.key) ? item.key.value : item.key) === segment);
      if (pair === undefined) return position;
      const key = pair.key as Node | null;
      if (key?.range) position = at(key.range[0]);
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number" && segment < node.items.length) {
      const item = node.items[segment] as Node | null;
      if (item?.range) position = at(item.range[0]);
      node = item;
    } else {
      return position;
    }
  }
  return position;
}

/** Key path of the innermost map entry or list item whose text contains `offset` (best effort, for syntax errors). */
function path_at(root: unknown, offset: number): PropertyKey[] {
  const path: PropertyKey[] = [];
  let node = root;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((item) => {
        const start = (item.key as Node | null)?.range?.[0];
        const end = (item.value as Node | null)?.range?.[2] ?? (item.key as Node | null)?.range?.[2];
        return start !== undefined && end !== undefined && start <= offset && offset <= end;
      });
      if (pair === undefined) return path;
      path.push(isScalar(pair.key) ? (pair.key.value as PropertyKey) : "?");
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => {
        const range = (item as Node | null)?.range;
        return range !== undefined && range !== null && range[0] <= offset && offset <= range[2];
      });
      if (index < 0) return path;
      path.push(index);
      node = node.items[index];
    } else {
      return path;
    }
  }
}
