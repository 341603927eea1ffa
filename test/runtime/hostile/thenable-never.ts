// A thenable that never calls back.
export default () => ({ then() {} });
