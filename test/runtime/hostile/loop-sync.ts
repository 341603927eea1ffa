// An infinite synchronous loop: stopped by the CPU limit.
export default async () => {
  for (;;) {
    // spin
  }
};
