/**
 * The sandbox's own code inside the isolate. worker.ts embeds `prelude.toString()` in front of
 * each program, so this function must be self-contained: it sees nothing of this module.
 *
 * It runs once per fresh context, BEFORE any program code, so it captures the built-ins it needs
 * while they are still the real ones: a program may replace `JSON.stringify` or
 * `Promise.prototype.then` in its own context, and that harms only its own invocation. Whatever
 * this code reports is untrusted anyway: the worker checks types and sizes of everything it gets.
 *
 * `start(send, done, token, input, logChars, outputChars, callsMax)` builds `ctx`, runs the program
 * and returns `deliver(id, ok, value)`, through which the worker answers host calls.
 *   send(token, id, method, payload): ignored-mode callback; method is 'log' (id 0), 'over' (a limit hit
 *     here first: payload 'log' or 'calls'), or a host method with a JSON array of arguments.
 *   done(token, kind, a, b): 0 = output JSON in a; 1 = threw (a: headline, b: stack);
 *     2 = output not JSON (a: why); 3 = output too large (a: its UTF-8 size in bytes).
 */
// The parameter types below are erased by Node's type stripping (replaced with spaces), so
// `prelude.toString()` is plain JavaScript.
/* eslint-disable @typescript-eslint/no-explicit-any */
export function prelude(table: any, load: () => any): any {
  'use strict';
  const g: any = globalThis;
  // Not ECMAScript, and nothing a program needs: V8's no-op console and WebAssembly (whose
  // shared memories and compiled code are a larger surface than the task needs).
  delete g.console;
  delete g.WebAssembly;

  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const freeze = Object.freeze;
  const create = Object.create;
  const isArray = Array.isArray;
  const ownKeys = Object.keys;
  const hasOwn = Object.prototype.hasOwnProperty;
  const apply = Reflect.apply;
  const P = Promise;
  const then = Promise.prototype.then;
  const StringFn = String;
  const ErrorFn = Error;
  const TypeErrorFn = TypeError;
  const slice = String.prototype.slice;
  const indexOf = String.prototype.indexOf;
  const charCodeAt = String.prototype.charCodeAt;
  const join = Array.prototype.join;
  const push = Array.prototype.push;

  const HEADLINE_CHARS = 1000;
  const STACK_CHARS = 8000;
  const ARGS_CHARS = 1048576;
  const NAME_CHARS = 1024;

  const cut = (s: string, n: number): string => (s.length > n ? apply(slice, s, [0, n]) : s);
  const rejected = (e: any): any => new P((_resolve: any, reject: any) => reject(e));
  const get = (o: any, k: string): any => {
    try {
      return o[k];
    } catch {
      return undefined;
    }
  };
  const utf8Bytes = (s: string): number => {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = apply(charCodeAt, s, [i]);
      n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
    }
    return n;
  };
  const describe = (e: any): [string, string] => {
    try {
      if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
        const message = get(e, 'message');
        if (typeof message === 'string') {
          const name = get(e, 'name');
          const stack = get(e, 'stack');
          const head = (typeof name === 'string' && name ? name : 'Error') + (message ? ': ' + message : '');
          return [cut(head, HEADLINE_CHARS), typeof stack === 'string' ? cut(stack, STACK_CHARS) : ''];
        }
        try {
          const json = stringify(e);
          if (typeof json === 'string') return [cut('threw ' + json, HEADLINE_CHARS), ''];
        } catch {
          // fall through
        }
        return ['threw an object that could not be described', ''];
      }
      if (typeof e === 'string') return [cut('threw ' + stringify(cut(e, HEADLINE_CHARS)), HEADLINE_CHARS), ''];
      return ['threw ' + StringFn(e), ''];
    } catch {
      return ['threw a value that could not be described', ''];
    }
  };
  const show = (v: any): string => {
    if (typeof v === 'string') return v;
    if (v !== null && typeof v === 'object' && v instanceof ErrorFn) return describe(v)[0];
    try {
      const json = stringify(v);
      if (typeof json === 'string') return json;
    } catch {
      // fall through
    }
    try {
      return StringFn(v);
    } catch {
      return '[unprintable]';
    }
  };
  const isName = (s: any): boolean => typeof s === 'string' && s.length > 0 && s.length <= NAME_CHARS;
  const isOptName = (s: any): boolean => s === undefined || isName(s);
  const isRecord = (o: any): boolean => o !== null && typeof o === 'object' && !isArray(o);

  return function start(sendTo: any, doneTo: any, token: number, inputJson: string, logChars: number, outputChars: number, callsMax: number): any {
    // The callbacks belong to the isolate, not to this context: the token names the invocation.
    const send = (id: number, method: string, payload: string): void => sendTo(token, id, method, payload);
    const done = (kind: number, a: any, b: any): void => doneTo(token, kind, a, b);
    let ended = false;
    let logUsed = 0;
    let calls = 0;
    let nextId = 1;
    const pending: any = create(null);

    const finish = (kind: number, a: any, b: any): void => {
      if (ended) return;
      ended = true;
      done(kind, a, b);
    };

    const call = (method: string, args: any[]): any => {
      if (ended) return rejected(new ErrorFn('the invocation has ended'));
      calls++;
      if (calls > callsMax) {
        if (calls === callsMax + 1) send(0, 'over', 'calls');
        return rejected(new ErrorFn('too many host calls: the limit is ' + callsMax));
      }
      let json: any;
      try {
        json = stringify(args);
      } catch (e) {
        return rejected(new TypeErrorFn(method + ': arguments are not JSON: ' + describe(e)[0]));
      }
      if (json.length > ARGS_CHARS) return rejected(new TypeErrorFn(method + ': arguments are larger than 1 MiB'));
      const id = nextId++;
      return new P((resolve: any, reject: any) => {
        pending[id] = [resolve, reject];
        send(id, method, json);
      });
    };
    const bad = (what: string): any => rejected(new TypeErrorFn(what));

    const log = (...args: any[]): void => {
      if (ended) return;
      const parts: string[] = [];
      for (let i = 0; i < args.length; i++) apply(push, parts, [show(args[i])]);
      const line: string = apply(join, parts, [' ']);
      if (logUsed + line.length + 1 > logChars) {
        logUsed = logChars + 1;
        send(0, 'over', 'log');
        throw new ErrorFn('log limit exceeded');
      }
      logUsed += line.length + 1;
      send(0, 'log', line);
    };
    // ctx.GROUP.CALL for each 'GROUP.CALL' of the host-call table (host-calls.ts), each checking
    // its arguments by their kinds before they leave the isolate.
    const fits = (kind: string, a: any): string | null => {
      if (kind === 'name' || kind === 'name?') return isName(a) ? null : '';
      if (kind === 'object') return isRecord(a) ? null : '';
      if (kind === 'query') {
        if (!isRecord(a)) return '';
        const keys = ownKeys(a);
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i];
          if (k !== 'type' && k !== 'namespace' && k !== 'tags') return 'unknown field ' + stringify(k);
        }
        if (!isOptName(a.type) || !isOptName(a.namespace)) return 'type and namespace are non-empty strings';
        if (a.tags !== undefined) {
          if (!isRecord(a.tags)) return 'tags is an object of strings';
          const tk = ownKeys(a.tags);
          for (let i = 0; i < tk.length; i++) if (typeof a.tags[tk[i]] !== 'string') return 'tags is an object of strings';
        }
        return null;
      }
      return '';
    };
    const makeCall = (method: string, spec: any): any => {
      const kinds: string[] = spec.args;
      let required = 0;
      for (let i = 0; i < kinds.length; i++) if (kinds[i] !== 'name?') required++;
      const usage = 'ctx.' + method + spec.signature + ' ' + spec.takes;
      return function (...args: any[]): any {
        // Trailing optional arguments left undefined are left out.
        let n = args.length;
        while (n > required && args[n - 1] === undefined) n--;
        if (n < required || n > kinds.length) return bad(usage);
        const out: any[] = [];
        for (let i = 0; i < n; i++) {
          const why = fits(kinds[i], args[i]);
          if (why !== null) return bad(why === '' ? usage : 'ctx.' + method + ': ' + why);
          apply(push, out, [args[i]]);
        }
        return call(method, out);
      };
    };
    const groups: any = create(null);
    const methods = ownKeys(table);
    for (let i = 0; i < methods.length; i++) {
      const method = methods[i];
      const dot = apply(indexOf, method, ['.']);
      const group = apply(slice, method, [0, dot]);
      if (!apply(hasOwn, groups, [group])) groups[group] = {};
      groups[group][apply(slice, method, [dot + 1])] = makeCall(method, table[method]);
    }
    const ctxFields: any = { log };
    const gk = ownKeys(groups);
    for (let i = 0; i < gk.length; i++) ctxFields[gk[i]] = freeze(groups[gk[i]]);
    const ctx = freeze(ctxFields);

    const deliver = (id: number, ok: boolean, value: string): void => {
      if (!apply(hasOwn, pending, [id])) return;
      const p = pending[id];
      delete pending[id];
      if (!ok) return void p[1](new ErrorFn(value));
      let v: any;
      try {
        v = value === '' ? undefined : parse(value);
      } catch (e) {
        return void p[1](e);
      }
      p[0](v);
    };

    const onOk = (out: any): void => {
      if (ended) return;
      let json: any;
      try {
        json = stringify(out);
      } catch (e) {
        return finish(2, describe(e)[0], '');
      }
      if (json === undefined) json = 'null';
      if (json.length > outputChars) return finish(3, utf8Bytes(json), '');
      finish(0, json, '');
    };
    const onErr = (e: any): void => {
      const d = describe(e);
      finish(1, d[0], d[1]);
    };

    try {
      const mod = load();
      const fn = mod === null || mod === undefined ? undefined : mod.default;
      if (typeof fn !== 'function') {
        finish(1, 'the program has no default export function: export default defineCapability(async (input, ctx) => { … })', '');
      } else {
        const input = parse(inputJson);
        const result = fn(input, ctx);
        // A real promise gets the real `then` (the program may have replaced the one on the
        // prototype); anything else is resolved the standard way, its own `then` included.
        let attached = false;
        try {
          apply(then, result, [onOk, onErr]);
          attached = true;
        } catch {
          // not a promise of this context
        }
        if (!attached) apply(then, new P((resolve: any) => resolve(result)), [onOk, onErr]);
      }
    } catch (e) {
      onErr(e);
    }
    return deliver;
  };
}
