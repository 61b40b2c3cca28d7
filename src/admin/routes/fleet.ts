import type { Hono } from "hono";
import { type FleetOrder, type FleetSortKey, fleet_page_rows_default, fleet_page_rows_max, fleet_sort_keys } from "../../sync/fleet.ts";
import type { AdminContext } from "../admin_context.ts";
import { error_response } from "../http_errors.ts";
import { int_param } from "./read.ts";

/** Rows are sorted by name unless the request says otherwise. */
const sort_default: FleetSortKey = "name";

/**
 * GET /api/fleet?sort=KEY&order=asc|desc&offset=N&limit=N: one page of
 * every replica this one knows (src/sync/fleet.ts says what each column
 * means), sorted; `total` rows in all. Anything malformed is a 400
 * BAD_REQUEST naming what is accepted.
 */
export function mount_fleet_route(app: Hono, ctx: AdminContext): void {
  app.get("/api/fleet", (c) => {
    const sort = c.req.query("sort") ?? sort_default;
    if (!(fleet_sort_keys as readonly string[]).includes(sort)) {
      return error_response(c, 400, "BAD_REQUEST", `sort must be one of ${fleet_sort_keys.join(", ")}; got ${JSON.stringify(sort)}`);
    }
    const order = c.req.query("order") ?? "asc";
    if (order !== "asc" && order !== "desc") return error_response(c, 400, "BAD_REQUEST", `order must be asc or desc; got ${JSON.stringify(order)}`);
    const offset = int_param(c.req.query("offset"), 0);
    if (offset === null) return error_response(c, 400, "BAD_REQUEST", "offset must be a non-negative integer");
    const limit = int_param(c.req.query("limit"), fleet_page_rows_default);
    if (limit === null || limit < 1 || limit > fleet_page_rows_max) {
      return error_response(c, 400, "BAD_REQUEST", `limit must be an integer from 1 to ${fleet_page_rows_max}`);
    }
    return c.json(ctx.fleet.page({ sort: sort as FleetSortKey, order: order as FleetOrder, offset, limit }));
  });
}
