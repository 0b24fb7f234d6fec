/** A one-line progress bar on a TTY; plain lines (one per change of stage or 10%) otherwise, e.g. in CI logs. */
export class ProgressBar {
  private lastLine = "";
  private lastDecile = -1;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(label: string, done: number, total: number, suffix = ""): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    if (this.out.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      const line = `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${suffix}`;
      if (line !== this.lastLine) this.out.write(`\r${line.padEnd(this.lastLine.length)}`);
      this.lastLine = line;
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile !== this.lastDecile) {
      this.lastDecile = decile;
      this.out.write(`${label} ${done}/${total} ${suffix}\n`);
    }
  }

  done(): void {
    if (this.out.isTTY && this.lastLine) this.out.write("\n");
    this.lastLine = "";
    this.lastDecile = -1;
  }
}
