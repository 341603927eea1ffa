// Dynamic import() of a computed specifier (the bundler cannot see it).
export default async () => {
  const spec = ['node', 'fs'].join(':');
  const fs = await import(/* @vite-ignore */ spec);
  return fs.readdirSync('/');
};
