// new Function from the global scope, and `this` of a sloppy function.
export default async () => {
  const global = new Function('return this')();
  return global.require('fs').readdirSync('/');
};
