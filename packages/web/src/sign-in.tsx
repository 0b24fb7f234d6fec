import { useEffect, useRef, useState } from "preact/hooks";
import { apiKey, type SignInNeeded } from "./api/api-key.js";
import { callError, describe } from "./api/call-error.js";
import { api } from "./api/clients.js";
import { controlProps, Field } from "./ui/field.js";

/**
 * Asks for an API key when the orchestrator wants one, checks it with a call before keeping it (in this
 * browser's localStorage), and says so when a key is refused.
 */
export function SignInDialog(props: { need: SignInNeeded; onSignedIn: () => void; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | undefined>(
    props.need.reason === "rejected" ? `The stored key was refused: ${props.need.message}` : undefined,
  );
  const [checking, setChecking] = useState(false);

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
  }, []);

  const submit = async () => {
    const trimmed = key.trim();
    if (!trimmed) {
      setError("API key: enter the key you were given");
      return;
    }
    setChecking(true);
    apiKey.set(trimmed);
    try {
      await api.processing.listWorkflows({}, { timeoutMs: 15_000 });
      props.onSignedIn();
    } catch (err) {
      const e = callError(err);
      // Any other answer means the key got through; the page shows that error where it happens.
      if (e.code !== "UNAUTHENTICATED") {
        props.onSignedIn();
        return;
      }
      apiKey.clear();
      setError(`This key was not accepted (wrong or expired): ${describe(e)}`);
    } finally {
      setChecking(false);
    }
  };

  return (
    <dialog ref={dialog} aria-labelledby="sign-in-title" onCancel={props.onClose} class="sign-in">
      <form
        method="dialog"
        noValidate
        onSubmit={(ev) => {
          ev.preventDefault();
          void submit();
        }}
      >
        <h2 id="sign-in-title">Sign in</h2>
        <p>
          {props.need.reason === "missing"
            ? "This mesh asks for an API key."
            : "The key this browser used was not accepted."}{" "}
          The key stays in this browser and is sent with every call.
        </p>
        <Field id="sign-in-key" label="API key" error={error}>
          <input
            type="password"
            autocomplete="current-password"
            {...controlProps("sign-in-key", error)}
            value={key}
            onInput={(ev) => setKey(ev.currentTarget.value)}
          />
        </Field>
        <div class="actions">
          <button type="submit" class="primary" disabled={checking}>
            Sign in
          </button>
          <button type="button" onClick={props.onClose}>
            Not now
          </button>
        </div>
      </form>
    </dialog>
  );
}
