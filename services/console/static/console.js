// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: <button data-copy="element-id">.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      const status = button.parentElement.querySelector(".copied");
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied.";
      } catch {
        if (status) status.textContent = "Selected: press Ctrl+C to copy.";
      }
    });
  }

  // The token form shows only the fields of the chosen kind.
  const kind = document.getElementById("kind");
  if (kind) {
    const sync = () => {
      for (const el of document.querySelectorAll("[data-kind]")) {
        el.hidden = el.dataset.kind !== kind.value;
      }
    };
    kind.addEventListener("change", sync);
    sync();
  }
});
