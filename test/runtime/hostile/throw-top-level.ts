// Throws while the module itself is evaluated, before the capability is called.
if (Math.random() >= 0) throw new TypeError('thrown at the top level');
export default async () => 'unreachable';
