// The `express4` alias (npm:express@4) has no typings of its own; its API is typed as Express's.
declare module 'express4' {
  import express from 'express';
  export default express;
}
