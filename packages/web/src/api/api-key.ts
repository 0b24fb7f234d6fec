import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

const STORAGE_KEY = "dmesh.apiKey";

/** The API key this browser signed in with, kept in localStorage; null when there is none. */
export const apiKey = {
  get(): string | null {
    try {
      return localStorage.getItem(STORAGE_KEY);
    } catch {
      return null;
    }
  },
  set(key: string): void {
    localStorage.setItem(STORAGE_KEY, key);
  },
  clear(): void {
    localStorage.removeItem(STORAGE_KEY);
  },
};

/** Why the page must ask for a key: none was sent, or the one sent was refused (wrong or expired). */
export interface SignInNeeded {
  readonly reason: "missing" | "rejected";
  readonly message: string;
}

const listeners = new Set<(need: SignInNeeded) => void>();

/** Called whenever a call answers UNAUTHENTICATED; returns the unsubscribe. */
export function onSignInNeeded(listener: (need: SignInNeeded) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function signalIfUnauthenticated(err: unknown, sentKey: boolean): void {
  const e = ConnectError.from(err);
  if (e.code !== Code.Unauthenticated) return;
  for (const listener of listeners)
    listener({ reason: sentKey ? "rejected" : "missing", message: e.rawMessage });
}

/**
 * Sends the stored key as a bearer token on every call, and tells the page when a call (or a stream, whose
 * error may come after its headers) is refused as unauthenticated.
 */
export const authInterceptor: Interceptor = (next) => async (req) => {
  const key = apiKey.get();
  if (key) req.header.set("authorization", `Bearer ${key}`);
  try {
    const res = await next(req);
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          signalIfUnauthenticated(err, key !== null);
          throw err;
        }
      })(),
    };
  } catch (err) {
    signalIfUnauthenticated(err, key !== null);
    throw err;
  }
};
