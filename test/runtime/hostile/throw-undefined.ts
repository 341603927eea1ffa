// Throws undefined.
export default async () => {
  throw undefined;
};
