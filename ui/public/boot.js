// Runs before the app's own code, which the browser fetches as a graph of modules. If any of them
// fails to download (the network changed mid-load, a proxy cut the transfer), the app never starts
// and the page would stay blank: say so, and offer the reload that usually fixes it.
'use strict';

window.addEventListener(
  'error',
  (event) => {
    // A failed module graph is reported as an error of the entry <script> (events of elements do not
    // bubble, hence the capture); errors thrown by code that did run are the app's to show.
    if (!(event.target instanceof HTMLScriptElement)) return;
    const notice = document.getElementById('load-failed');
    if (notice) notice.hidden = false;
  },
  true,
);

document.addEventListener('click', (event) => {
  if (event.target instanceof Element && event.target.id === 'load-failed-reload') window.location.reload();
});
