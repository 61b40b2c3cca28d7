import { assert } from "../lib/assert.ts";
import { copy_bytes } from "../lib/bytes.ts";
import { crc32c_update } from "../lib/crc32c.ts";
import type { CheckedEvents } from "./checked_events.ts";
import type { FileHandle } from "./file_io.ts";
import {
  flag_batch_end,
  flag_signed,
  frame_crc_compute,
  frame_crc_from_offset,
  frame_crc_offset,
  frame_flags_offset,
  frame_header_bytes,
  frame_len_offset,
  frame_local_offset,
  frame_size_bytes,
  frame_size_of_len,
  proof_bytes,
  set_frame_epoch,
  write_frame_fields,
  write_frame_header,
} from "./frame.ts";
import { range_seal_bytes, staging_bytes } from "./log_options.ts";
import { proof_at, proof_signature_offset, RangeHash, write_proof_head } from "./proof.ts";
import { signature_bytes } from "./key_id.ts";
import type { Signer } from "./signer.ts";
import type { Segment } from "./segment.ts";

/** What the stager writes to, and whom it tells. */
export interface StagerSink {
  /** The open handle of the active segment. */
  handle(): FileHandle;
  /** A write reached the file outside an fsync cycle's knowledge: the next cycle must sync this handle. */
  wrote(handle: FileHandle): void;
  /** A write failed: returns the error that stops the log, to throw. */
  fail(err: unknown): Error;
}

/**
 * Assembles frames in one reusable buffer and hands them to the OS with one
 * pwrite per flush, right after the active segment's data (design.md section
 * 2: writes through the mapping + fdatasync measured 4-5x slower). Frames too
 * big for the buffer go straight to the file, header last.
 *
 * It also signs this replica's own frames (proof.ts): own frames staged
 * since the last signature form the open range; `seal` patches a proof into
 * the range's last frame while it is still in the buffer (a key that signs
 * asynchronously, a browser's, gets its signature patched into the file
 * when it comes, before the next fsync: patch_later). Every flush seals
 * first, a range ends past range_seal_bytes (at a batch end, or inside a
 * big batch), and an own frame too big for the buffer is a range of its
 * own: no own frame ever reaches the file unsigned, and a range fits one
 * message.
 *
 * Invariants: staged_at + staged_bytes is where the active segment's data
 * ends; the open range, if any, is a contiguous run of own frames from
 * range_start_bytes to the segment's end, the last of them in staging.
 */
export class FrameStager {
  private readonly staging = new Uint8Array(staging_bytes);
  private readonly staging_view = new DataView(this.staging.buffer);
  private readonly big_header = new Uint8Array(frame_header_bytes);
  private readonly big_header_view = new DataView(this.big_header.buffer);
  private readonly sink: StagerSink;
  private staged_bytes = 0;
  /** Offset in the active segment where staging[0] belongs. */
  private staged_at: number;
  private segment: Segment;
  /** The key that signs own frames; null for a read-only log, which stages nothing. */
  private readonly key: Signer | null;
  private readonly own_hi: number;
  private readonly own_lo: number;
  /** First seq of the open range (own frames not yet signed); 0 when none. */
  private range_first_seq = 0;
  /** Where in the active segment the open range begins. */
  private range_start_bytes = 0;
  /** Offset in staging of the last staged frame when it is own (the one a seal patches); -1 otherwise. */
  private tail_at = -1;
  /** Ranges signed (a figure for stats). */
  signatures = 0;
  /** This run's write epoch, stamped into every frame's local word as it goes to the file (frame.ts local_word). */
  private readonly epoch: number;

  /** Signatures an async signer is still making, each patching its frame in the file when it comes. */
  private signing: Promise<Error | null>[] = [];

  constructor(sink: StagerSink, segment: Segment, key: Signer | null, own_hi: number, own_lo: number, epoch = 0) {
    this.epoch = epoch;
    this.sink = sink;
    this.segment = segment;
    this.staged_at = segment.end_bytes;
    this.key = key;
    this.own_hi = own_hi;
    this.own_lo = own_lo;
  }

  /** Whether own frames wait for their signature. */
  get range_open(): boolean {
    return this.range_first_seq !== 0;
  }

  /** Bytes waiting in the buffer. */
  get pending_bytes(): number {
    return this.staged_bytes;
  }

  /** The active segment changed: frames now go to its start. Flush first. */
  start_segment(segment: Segment): void {
    assert(this.staged_bytes === 0, "staging was flushed before the segment changed");
    assert(segment.end_bytes === 0, "a new segment starts empty");
    assert(!this.range_open, "a range never spans segments (rotation flushes, and a flush seals)");
    this.staged_at = 0;
    this.segment = segment;
  }

  /** Writes one frame (header + payload + padding) after the segment's last one and indexes it. */
  stage(segment: Segment, origin: string, hi: number, lo: number, seq: number, time_ms: number, flags: number, payload: Uint8Array): void {
    assert(segment === this.segment, "frames go to the active segment");
    const size = frame_size_bytes(payload.length);
    const own = hi === this.own_hi && lo === this.own_lo;
    assert(own || !this.range_open, "own frames are sealed before another origin's are staged");
    // Any own frame may end a range and get a proof: room for it in the segment (reserve) and in staging.
    const room = own ? size + proof_bytes : size;
    if (room <= this.staging.length) {
      // A range travels whole in one message: past range_seal_bytes it ends before this frame, inside a batch if need be.
      if (own && this.range_open && segment.end_bytes - this.range_start_bytes >= range_seal_bytes) this.seal();
      if (this.staged_bytes + room > this.staging.length) this.flush();
      const offset = this.begin_frame(segment, own, seq, room);
      const at = this.staged_bytes;
      this.staging.set(payload, at + frame_header_bytes);
      this.staging.fill(0, at + frame_header_bytes + payload.length, at + size);
      write_frame_header(this.staging, this.staging_view, at, hi, lo, seq, time_ms, flags, payload);
      this.staged_bytes = at + size;
      this.tail_at = own ? at : -1;
      segment.note_record(origin, seq, offset);
      segment.end_bytes = offset + size;
      // And it ends at the first batch end past range_seal_bytes, so the next batch starts a range of its own.
      if (own && (flags & flag_batch_end) !== 0 && segment.end_bytes - this.range_start_bytes >= range_seal_bytes) this.seal();
      return;
    }
    // Too big for staging: payload straight to the file, header last so a crash in between leaves len = 0. An own one is a range of its own.
    this.flush();
    const offset = this.begin_frame(segment, own, seq, room);
    const handle = this.sink.handle();
    let written = size;
    write_frame_header(this.big_header, this.big_header_view, 0, hi, lo, seq, time_ms, flags, payload);
    try {
      handle.write(payload, 0, payload.length, offset + frame_header_bytes);
      if (own) {
        written = this.write_big_proof(handle, offset, payload);
      } else {
        const padding = size - frame_header_bytes - payload.length;
        if (padding > 0) handle.write(new Uint8Array(padding), 0, padding, offset + frame_header_bytes + payload.length);
      }
      // The epoch is stamped after signing: neither the crc nor the proof covers the local word.
      set_frame_epoch(this.big_header_view, 0, this.epoch);
      handle.write(this.big_header, 0, frame_header_bytes, offset);
    } catch (err) {
      throw this.sink.fail(err);
    }
    // Written around the staging buffer, so flush() will not note the file: the next fsync cycle must cover it.
    this.sink.wrote(handle);
    this.staged_at = offset + written;
    this.tail_at = -1;
    segment.note_record(origin, seq, offset);
    segment.end_bytes = offset + written;
  }

  /** Where the next frame goes (after any seal or flush just made), checked; opens a range for an own frame when none is open. */
  private begin_frame(segment: Segment, own: boolean, seq: number, room: number): number {
    const offset = segment.end_bytes;
    assert(offset + room <= segment.size_bytes, "reserve() made room for the frame");
    assert(this.staged_at + this.staged_bytes === offset, "staging ends where the segment's data ends");
    if (own && !this.range_open) {
      assert(this.key !== null, "a writable log has its key");
      this.range_first_seq = seq;
      this.range_start_bytes = offset;
    }
    return offset;
  }

  /**
   * Signs the open range ending with a big own frame written straight to the
   * file (payload already there): hashes the range's earlier frames from the
   * mapping, then this frame from big_header and payload; writes the proof
   * and padding after the payload and the final crc and len into big_header.
   * Returns the frame's padded size.
   */
  private write_big_proof(handle: FileHandle, offset: number, payload: Uint8Array): number {
    const key = this.key as Signer;
    const header = this.big_header;
    const view = this.big_header_view;
    const len = frame_header_bytes + payload.length + proof_bytes;
    const size = frame_size_of_len(len);
    const tail = new Uint8Array(size - frame_header_bytes - payload.length);
    const tail_view = new DataView(tail.buffer);
    write_proof_head(tail, tail_view, 0, this.range_first_seq, key.public_key);
    view.setUint32(frame_flags_offset, view.getUint32(frame_flags_offset, true) | flag_signed, true);
    view.setUint32(frame_len_offset, len, true);
    // flush() sealed what came before, so this frame is the whole range (the file's frames carry epochs, never hashed).
    assert(this.range_start_bytes === offset, "a big own frame is a range of its own");
    const hash = new RangeHash();
    hash.add(header, 0, frame_crc_offset);
    hash.add(header, frame_crc_offset + 4, frame_header_bytes);
    hash.add(payload, 0, payload.length);
    hash.add(tail, 0, proof_signature_offset);
    const signature = key.sign(hash.message());
    let crc = crc32c_update(0, header, frame_crc_from_offset, frame_local_offset);
    crc = crc32c_update(crc, payload, 0, payload.length);
    crc = crc32c_update(crc, tail, 0, proof_signature_offset);
    const tail_at = offset + frame_header_bytes + payload.length;
    if (signature instanceof Uint8Array) {
      tail.set(signature, proof_signature_offset);
      view.setUint32(frame_crc_offset, crc32c_update(crc, signature, 0, signature_bytes), true);
    } else {
      this.patch_later(handle, signature, tail_at + proof_signature_offset, offset + frame_crc_offset, crc);
    }
    // len goes last with the header (the caller writes it); until then a reader sees 0.
    handle.write(tail, 0, tail.length, tail_at);
    this.end_range();
    return size;
  }

  /**
   * Signs the open range: patches the proof into its last frame, still in
   * the buffer (staging and segment grow by the proof). Does nothing when no
   * own frame waits. Inside a batch too: recovery keeps an own batch only
   * once a signed frame ends it (scan.ts).
   */
  seal(): void {
    if (!this.range_open) return;
    const at = this.tail_at;
    assert(at >= 0, "an open range ends with an own frame in staging");
    const key = this.key as Signer;
    const bytes = this.staging;
    const view = this.staging_view;
    const old_len = view.getUint32(at + frame_len_offset, true);
    const old_size = frame_size_of_len(old_len);
    const len = old_len + proof_bytes;
    const size = frame_size_of_len(len);
    assert(at + size <= bytes.length, "stage() kept room for the proof");
    const proof = proof_at(at, len);
    write_proof_head(bytes, view, proof, this.range_first_seq, key.public_key);
    bytes.fill(0, at + len, at + size);
    view.setUint32(at + frame_flags_offset, view.getUint32(at + frame_flags_offset, true) | flag_signed, true);
    view.setUint32(at + frame_len_offset, len, true);
    const hash = new RangeHash();
    // Every flush seals first, so the whole range is still in staging (without epochs in its local words).
    assert(this.range_start_bytes >= this.staged_at, "an open range lies in staging");
    hash.add(bytes, this.range_start_bytes - this.staged_at, at);
    hash.add_last_frame(bytes, view, at);
    const signature = key.sign(hash.message());
    this.staged_bytes = at + size;
    this.segment.end_bytes += size - old_size;
    assert(this.staged_at + this.staged_bytes === this.segment.end_bytes, "staging ends where the segment's data ends");
    this.end_range();
    if (signature instanceof Uint8Array) {
      bytes.set(signature, proof + proof_signature_offset);
      view.setUint32(at + frame_crc_offset, frame_crc_compute(bytes, at, len), true);
      return;
    }
    // An async signer: the crc up to the signature now, the range to the file, the signature and crc when they come.
    bytes.fill(0, proof + proof_signature_offset, proof + proof_signature_offset + signature_bytes);
    view.setUint32(at + frame_crc_offset, 0, true);
    const frame_at = this.staged_at + at;
    const crc = crc32c_update(crc32c_update(0, bytes, at + frame_crc_from_offset, at + frame_local_offset), bytes, at + frame_header_bytes, at + len - signature_bytes);
    // The patch is registered first (a failing flush must not leave the signature's rejection unhandled); it cannot
    // land before the flush below, which runs on this turn, and flush keeps the active segment's handle.
    this.patch_later(this.sink.handle(), signature, frame_at + len - signature_bytes, frame_at + frame_crc_offset, crc);
    this.flush();
  }

  /**
   * Writes a signature still being made into the file once it comes, with
   * the crc that covers it (`crc_before`: the crc up to the signature). Its
   * frame reads as torn until then; the group commit waits for every patch
   * before an fsync (signatures_settled), so a durable frame is signed.
   */
  private patch_later(handle: FileHandle, signature: Promise<Uint8Array>, signature_at: number, crc_at: number, crc_before: number): void {
    const job = signature
      .then((sig) => {
        assert(sig.length === signature_bytes, "an Ed25519 signature is 64 bytes");
        const crc = new Uint8Array(4);
        new DataView(crc.buffer).setUint32(0, crc32c_update(crc_before, sig, 0, signature_bytes), true);
        handle.write(sig, 0, signature_bytes, signature_at);
        handle.write(crc, 0, 4, crc_at);
        this.sink.wrote(handle);
      })
      // Never a rejection nobody awaits (a log abandoned in a crash): the failure stops the log, and the next fsync reports it.
      .then(
        () => null,
        (err: unknown) => this.sink.fail(err),
      );
    this.signing.push(job);
  }

  /** Resolves once every signature asked for so far is in the file (null when none is pending); rejects when one failed. */
  signatures_settled(): Promise<void> | null {
    if (this.signing.length === 0) return null;
    const jobs = this.signing;
    this.signing = [];
    return Promise.all(jobs).then((failures) => {
      const failure = failures.find((f) => f !== null);
      if (failure !== undefined) throw failure;
    });
  }

  private end_range(): void {
    this.range_first_seq = 0;
    this.tail_at = -1;
    this.signatures++;
  }

  /** Writes event i of `events` like stage(), with `crc` as given (-1: compute it), copying the payload without a view. */
  stage_checked(segment: Segment, events: CheckedEvents, i: number, flags: number, crc: number): void {
    assert(!this.range_open, "own frames are sealed before another origin's are staged");
    const src = events.src[i];
    const start = events.start[i];
    const payload_bytes = events.end[i] - start;
    const size = frame_size_bytes(payload_bytes);
    if (size > this.staging.length) {
      const payload = src.subarray(start, events.end[i]);
      this.stage(segment, events.origin[i], events.origin_hi[i], events.origin_lo[i], events.seq[i], events.time_ms[i], flags, payload);
      return;
    }
    const offset = segment.end_bytes;
    assert(offset + size <= segment.size_bytes, "reserve() made room for the frame");
    assert(this.staged_at + this.staged_bytes === offset, "staging ends where the segment's data ends");
    if (this.staged_bytes + size > this.staging.length) this.flush();
    const at = this.staged_bytes;
    const view = this.staging_view;
    copy_bytes(src, start, events.end[i], this.staging, at + frame_header_bytes);
    this.staging.fill(0, at + frame_header_bytes + payload_bytes, at + size);
    write_frame_fields(view, at, events.origin_hi[i], events.origin_lo[i], events.seq[i], events.time_ms[i], flags);
    const len = frame_header_bytes + payload_bytes;
    view.setUint32(at + frame_len_offset, len, true);
    view.setUint32(at + frame_crc_offset, crc >= 0 ? crc : frame_crc_compute(this.staging, at, len), true);
    this.staged_bytes = at + size;
    this.tail_at = -1;
    segment.note_record(events.origin[i], events.seq[i], offset);
    segment.end_bytes = offset + size;
  }

  /** Seals the open range and hands staged frames to the OS (one pwrite). */
  flush(): void {
    if (this.tail_at >= 0) this.seal();
    if (this.staged_bytes === 0) return;
    // Stamped here, after every seal: the range hashes saw the local words as the origin's (0).
    if (this.epoch !== 0) {
      const view = this.staging_view;
      for (let at = 0; at < this.staged_bytes; at += frame_size_of_len(view.getUint32(at + frame_len_offset, true))) {
        set_frame_epoch(view, at, this.epoch);
      }
    }
    const handle = this.sink.handle();
    try {
      handle.write(this.staging, 0, this.staged_bytes, this.staged_at);
    } catch (err) {
      throw this.sink.fail(err);
    }
    this.staged_at += this.staged_bytes;
    this.staged_bytes = 0;
    this.sink.wrote(handle);
  }
}
