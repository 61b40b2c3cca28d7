/** Messages of the newest rejections remembered (about 1 KiB each at most). */
export const rejection_messages_max = 1024;

/**
 * The sync validators' messages for recent rejections, by event id, so
 * /api/quarantine shows what the validator said when the event arrived:
 * a validator that compares with earlier events (gps-fix) cannot say it
 * again later. Bounded; the oldest go first. After a restart the admin API
 * runs the validators again instead.
 */
export class RejectionMessages {
  private readonly by_id = new Map<string, string>();

  note(origin: string, seq: number, message: string): void {
    const id = `${origin}:${seq}`;
    this.by_id.delete(id);
    this.by_id.set(id, message);
    if (this.by_id.size > rejection_messages_max) this.by_id.delete(this.by_id.keys().next().value as string);
  }

  get(origin: string, seq: number): string | null {
    return this.by_id.get(`${origin}:${seq}`) ?? null;
  }
}
