// One allocation far over the limit: also a V8 fatal OOM of the process.
export default async () => new Array(1e8).fill(0).length;
