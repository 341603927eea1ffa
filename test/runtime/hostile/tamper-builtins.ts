// Replaces the built-ins the sandbox's prelude uses after the program starts; then throws.
export default async () => {
  JSON.stringify = () => 'not what you think';
  Promise.prototype.then = function () {
    throw new Error('then is gone');
  } as never;
  Reflect.apply = () => 'hijacked';
  String.prototype.slice = () => 'hijacked';
  throw new Error('tampered');
};
