// Throws a string, not an Error.
export default async () => {
  throw 'a plain string';
};
