// Many small objects.
export default async () => {
  const keep: object[] = [];
  for (let i = 0; ; i++) keep.push({ i, next: keep.length });
};
