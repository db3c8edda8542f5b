// A Map that forgets its oldest entries past a size, for caches of facts that never change (a task's path).
export class BoundedMap<K, V> extends Map<K, V> {
  private readonly sizeMax: number;

  constructor(sizeMax: number) {
    super();
    this.sizeMax = sizeMax;
  }

  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.sizeMax) this.delete(this.keys().next().value as K);
    return super.set(key, value);
  }
}
