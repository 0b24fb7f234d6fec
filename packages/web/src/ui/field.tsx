import type { ComponentChildren } from "preact";
import { Alert } from "./alert.js";

/** The attributes that tie a control to its label and to its error message. */
export function controlProps(id: string, error: string | undefined) {
  return {
    id,
    "aria-invalid": error ? ("true" as const) : undefined,
    "aria-describedby": error ? `${id}-error` : undefined,
  };
}

/** A labelled control with the error about it right below, read out when it appears. */
export function Field(props: {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string;
  wide?: boolean;
  children: ComponentChildren;
}) {
  return (
    <div class={`field${props.wide ? " wide" : ""}${props.error ? " has-error" : ""}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint && !props.error ? <p class="hint">{props.hint}</p> : null}
      <Alert text={props.error} id={`${props.id}-error`} />
    </div>
  );
}
