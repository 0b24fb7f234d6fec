/** An error where it happened, read out when it appears; nothing when there is none. */
export function Alert(props: { text: string | undefined; id?: string }) {
  return props.text ? (
    <p class="field-error" role="alert" id={props.id}>
      {props.text}
    </p>
  ) : null;
}
