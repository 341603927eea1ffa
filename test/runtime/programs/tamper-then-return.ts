// Replaces JSON.stringify and Promise.prototype.then, then returns normally: the sandbox's
// captured built-ins still produce the real output.
export default async () => {
  JSON.stringify = () => '"forged"';
  Promise.prototype.then = function () {
    throw new Error('then is gone');
  } as never;
  return { real: true };
};
