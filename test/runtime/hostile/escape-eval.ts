// Indirect eval of `require`.
export default async () => {
  const indirect = eval;
  return indirect('require')('fs').readFileSync('/etc/passwd', 'utf8');
};
