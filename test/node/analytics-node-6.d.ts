/** The part of analytics-node 6 (plain JavaScript, no types of its own) the SDK test uses. */
declare module "analytics-node-6" {
  interface Message {
    userId?: string;
    event?: string;
    traits?: Record<string, unknown>;
    properties?: Record<string, unknown>;
    context?: Record<string, unknown>;
    timestamp?: Date;
  }
  export default class Analytics {
    constructor(
      writeKey: string,
      options?: { host?: string; retryCount?: number; errorHandler?: (error: unknown) => void },
    );
    identify(message: Message): this;
    track(message: Message): this;
    flush(): Promise<unknown>;
  }
}
