import { useState } from "preact/hooks";

/** Delete in two presses: the first asks, the second (Confirm delete) does it; Keep takes it back. */
export function ConfirmDelete(props: { what: string; onDelete: () => void }) {
  const [asking, setAsking] = useState(false);
  if (!asking)
    return (
      <button type="button" aria-label={`Delete ${props.what}`} onClick={() => setAsking(true)}>
        Delete
      </button>
    );
  return (
    <>
      <button
        type="button"
        class="danger"
        aria-label={`Confirm delete ${props.what}`}
        onClick={() => {
          setAsking(false);
          props.onDelete();
        }}
      >
        Confirm delete
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Keep
      </button>
    </>
  );
}
