// An infinite loop that awaits each turn: never blocks a thread for long, still stopped by CPU time.
export default async () => {
  let n = 0;
  for (;;) {
    await null;
    n++;
  }
};
