export interface Greeting {
  greeting: string;
  record: unknown;
  count: number;
  applied: unknown;
}
