import type { ComponentChildren } from "preact";

/** One page of the app: a landmark named by its heading. */
export function Page(props: {
  title: string;
  class?: string;
  head?: ComponentChildren;
  children: ComponentChildren;
}) {
  const id = `${props.title.toLowerCase()}-title`;
  return (
    <section class={`page ${props.class ?? ""}`} aria-labelledby={id}>
      <div class="page-head">
        <h1 id={id}>{props.title}</h1>
        {props.head}
      </div>
      {props.children}
    </section>
  );
}
