// A promise chain that schedules itself forever, after the function has returned a value.
export default async () => {
  const spin = (): Promise<void> => Promise.resolve().then(spin);
  void spin();
  return 'returned, but still spinning';
};
