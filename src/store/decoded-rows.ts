// Rows a store has decoded, kept with the text they came from: a row read again as the same text — the usual case,
// as this process wrote it — is not parsed again. Sound whatever else writes the file: a row is a function of its
// text, so a row written elsewhere (another process, a rolled-back write, a hand edit) reads as another text and is
// decoded afresh. Rows are never changed in place (every rule copies the rows it changes; the memory store hands
// out its own rows the same way), so one decoded row can serve every reader.
import { BoundedMap } from './bounded-map.js';

export class DecodedRows<Row> {
  private readonly known: BoundedMap<string, { text: string; row: Row }>;

  constructor(
    private readonly decode: (text: string) => Row,
    sizeMax: number,
  ) {
    this.known = new BoundedMap(sizeMax);
  }

  /** The row stored under `key` as `text`. */
  row(key: string, text: string): Row {
    const known = this.known.get(key);
    if (known !== undefined && known.text === text) return known.row;
    const row = this.decode(text);
    this.known.set(key, { text, row });
    return row;
  }

  /** A row this store has just written as `text` (committed or not: only the text read next decides). */
  wrote(key: string, text: string, row: Row): void {
    this.known.set(key, { text, row });
  }
}
