// A bounded log of lines (server output, browser consoles), printed when a test fails.

/** Keeps the last `max` lines written to it. */
export class LineLog {
  constructor(max = 400) {
    this.max = max;
    this.lines = [];
    this.partial = '';
  }

  write(chunk) {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop();
    for (const line of parts) {
      this.lines.push(line);
      if (this.lines.length > this.max) this.lines.shift();
    }
  }

  text() {
    return [...this.lines, this.partial].filter(Boolean).join('\n');
  }
}
