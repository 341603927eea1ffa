// A promise that never settles: nothing runs, the wall-time limit ends it.
export default () => new Promise<never>(() => {});
