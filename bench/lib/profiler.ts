// Lets a parent take a V8 CPU profile of a child over a window of its choosing (never its startup).
import { Session } from 'node:inspector';

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/** `profileStart` / `profileStop` handlers for `serveParent()`. */
export function profilerHandlers(): { profileStart: () => Promise<void>; profileStop: () => Promise<CpuProfile> } {
  let session: Session | undefined;
  const post = <T>(method: string, params?: object): Promise<T> =>
    new Promise((resolve, reject) => {
      session!.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result as T)));
    });
  return {
    profileStart: async () => {
      session = new Session();
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 100 });
      await post('Profiler.start');
    },
    profileStop: async () => {
      const { profile } = await post<{ profile: CpuProfile }>('Profiler.stop');
      session!.disconnect();
      session = undefined;
      return profile;
    },
  };
}
