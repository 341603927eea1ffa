export default async () => {
  throw new Error('this filter is broken');
};
