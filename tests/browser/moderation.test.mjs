// The meeting features through the web client (issue 9): chat between three pages with the
// history for a late joiner, a hostile message shown as text, a locked room whose newcomer
// waits in the lobby until the moderator admits it from the People tab, and a moderator
// removing a page. The first page of a new room is its moderator (the server's default).

import assert from 'node:assert/strict';
import { waitFor, sleep } from './harness.mjs';
import { createSuite, roomName } from './suite.mjs';

const suite = createSuite({ kinds: ['chromium'] });
const { e2e, step, join, openPage, waitJoined, closePeers } = suite;

const XSS = '<img src=x onerror="window.__pwned = true">';

/** The chat as the page shows it: [{from, text}] read from the DOM. */
function chatOf(peer) {
  return peer.evaluate(() => [...document.querySelectorAll('#chat-list li')].map((li) => ({
    from: li.querySelector('.chat-from').textContent,
    text: li.querySelector('.chat-text').textContent,
    images: li.querySelectorAll('img').length,
  })));
}

async function openTab(peer, tab) {
  await peer.evaluate(() => {
    if (document.getElementById('side-panel').hidden) document.getElementById('participants-button').click();
  });
  await peer.click(`#tab-${tab}`);
}
const openChat = (peer) => openTab(peer, 'chat');

async function say(peer, text) {
  await openChat(peer);
  await peer.fill('#chat-input', text);
  await peer.click('#chat-form button[type="submit"]');
  await waitFor(`${peer.label}'s message to be sent`, async () => {
    const v = await peer.evaluate(() => document.getElementById('chat-input').value);
    return { ok: v === '', detail: v };
  }, { timeoutMs: 5000 });
}

async function waitChat(peer, expected) {
  return waitFor(`${peer.label} to show the chat ${JSON.stringify(expected)}`, async () => {
    const got = await chatOf(peer);
    const texts = got.map((e) => `${e.from}: ${e.text}`);
    return { ok: JSON.stringify(texts) === JSON.stringify(expected), detail: got };
  }, { timeoutMs: 10000 });
}

e2e('chat between three pages, history for a late joiner, markup shown as text', async (t) => {
  const room = roomName('chat');
  const a = await join(room, 'Ana');
  const b = await join(room, 'Ben');
  const c = await join(room, 'Cleo');
  await step(t, 'a message from each page reaches every page, in order', async () => {
    await say(a, 'hello from Ana');
    await waitChat(b, ['Ana: hello from Ana']);
    await say(b, 'hi Ana');
    await waitChat(c, ['Ana: hello from Ana', 'Ben: hi Ana']);
    await say(c, XSS);
    await waitChat(a, ['You: hello from Ana', 'Ben: hi Ana', `Cleo: ${XSS}`]);
    await waitChat(c, ['Ana: hello from Ana', 'Ben: hi Ana', `You: ${XSS}`]);
  });
  await step(t, 'markup in a message is text: no element made, no script run', async () => {
    for (const p of [a, b, c]) {
      const got = await chatOf(p);
      assert.equal(got[2].images, 0, `${p.label} made an <img> from a chat message`);
      assert.equal(await p.evaluate(() => window.__pwned === true), false, `${p.label} ran the message's onerror`);
    }
  });
  await step(t, 'a late joiner sees the history', async () => {
    const d = await join(room, 'Dev');
    await openChat(d);
    await waitChat(d, ['Ana: hello from Ana', 'Ben: hi Ana', `Cleo: ${XSS}`]);
    assert.equal((await chatOf(d))[2].images, 0);
    await closePeers(d);
  });
  await step(t, 'a normal participant has no Clear button; the moderator clears the chat for all', async () => {
    assert.equal(await b.evaluate(() => document.getElementById('chat-clear').hidden), true, 'Ben is no moderator');
    await openChat(a);
    assert.equal(await a.evaluate(() => document.getElementById('chat-clear').hidden), false, 'Ana (first in the room) moderates');
    await a.click('#chat-clear');
    for (const p of [a, b, c]) await waitChat(p, []);
  });
  await closePeers(a, b, c);
});

e2e('a locked room: the newcomer waits in the lobby until the moderator admits it from the People tab', async (t) => {
  const room = roomName('lobby');
  const mod = await join(room, 'Mona');
  const other = await join(room, 'Otto');
  await step(t, 'the moderator locks the meeting with the button; everyone sees it', async () => {
    await openTab(mod, 'people');
    assert.equal(await other.evaluate(() => document.getElementById('room-controls').hidden), true, 'Otto may not lock');
    await mod.click('#lock-button');
    for (const p of [mod, other]) {
      await waitFor(`${p.label} to know the room is locked`, async () => {
        const locked = await p.evaluate(() => window.meeting.locked);
        return { ok: locked === true, detail: locked };
      }, { timeoutMs: 5000 });
    }
    assert.equal(await mod.evaluate(() => document.getElementById('lock-button').textContent), 'Unlock the meeting');
  });
  let guest;
  await step(t, 'a newcomer waits, sees that it waits, receives nothing and is listed in the moderator\'s lobby', async () => {
    guest = await openPage(`/${room}?${new URLSearchParams({ displayName: 'Gus', autoJoin: '1' })}`, 'Gus');
    await waitFor('Gus to wait in the lobby', async () => {
      const s = await guest.evaluate(() => ({
        state: window.meeting.state,
        inLobby: window.meeting.inLobby,
        banner: !document.getElementById('lobby-wait').hidden,
        connection: document.getElementById('connection-state').dataset.state,
      }));
      return { ok: s.state === 'lobby' && s.inLobby && s.banner && s.connection === 'lobby', detail: s };
    }, { timeoutMs: 15000 });
    await waitFor('Mona to list Gus as waiting, with Admit', async () => {
      const s = await mod.evaluate(() => ({
        shown: !document.getElementById('lobby-section').hidden,
        names: [...document.querySelectorAll('#lobby-list li .pname')].map((e) => e.textContent),
      }));
      return { ok: s.shown && s.names.join() === 'Gus', detail: s };
    }, { timeoutMs: 10000 });
    // By default (as in the original) every participant may admit (promotePeer): Otto sees
    // the lobby too. Locking is the moderator's.
    assert.equal(await other.evaluate(() => document.getElementById('lobby-section').hidden), false, 'Otto may admit by default');
    await sleep(500);
    const waiting = await guest.evaluate(() => ({ peers: window.meeting.peers.size, consumers: window.meeting.consumers.size }));
    assert.deepEqual(waiting, { peers: 0, consumers: 0 }, 'a waiting page must see nobody');
    const others = await mod.evaluate(() => [...window.meeting.peers.values()].map((p) => p.displayName));
    assert.deepEqual(others, ['Otto'], 'the waiting page is not in the meeting yet');
  });
  await step(t, 'Admit lets it in: it joins, everyone lists it', async () => {
    await mod.click('#lobby-list li .admit');
    await waitJoined(guest);
    assert.equal(await guest.evaluate(() => document.getElementById('lobby-wait').hidden), true, 'the waiting banner goes away');
    for (const p of [mod, other]) {
      await waitFor(`${p.label} to list Gus`, async () => {
        const names = await p.evaluate(() => [...window.meeting.peers.values()].map((x) => x.displayName));
        return { ok: names.includes('Gus'), detail: names };
      }, { timeoutMs: 10000 });
    }
    await waitFor('the lobby list to empty', async () => {
      const hidden = await mod.evaluate(() => document.getElementById('lobby-section').hidden);
      return { ok: hidden, detail: hidden };
    }, { timeoutMs: 5000 });
  });
  await step(t, 'Refuse ends a waiting page\'s attempt with a message', async () => {
    const late = await openPage(`/${room}?${new URLSearchParams({ displayName: 'Lia', autoJoin: '1' })}`, 'Lia');
    await waitFor('Mona to list Lia as waiting', async () => {
      const names = await mod.evaluate(() => [...document.querySelectorAll('#lobby-list li .pname')].map((e) => e.textContent));
      return { ok: names.join() === 'Lia', detail: names };
    }, { timeoutMs: 15000 });
    await mod.click('#lobby-list li .deny');
    await waitFor('Lia to be told she was not let in', async () => {
      const s = await late.evaluate(() => ({
        state: window.meeting.state,
        left: !document.getElementById('left-screen').hidden,
        title: document.getElementById('left-title').textContent,
      }));
      return { ok: s.state === 'closed' && s.left && /not let in/.test(s.title), detail: s };
    }, { timeoutMs: 10000 });
    await closePeers(late);
  });
  await closePeers(mod, other, guest);
});

e2e('the moderator removes a page: it leaves the meeting, is told why and does not come back by itself', async (t) => {
  const room = roomName('kick');
  const mod = await join(room, 'Mia');
  const victim = await join(room, 'Vic');
  await step(t, 'a normal participant has no Remove button', async () => {
    await waitFor('Vic to list Mia', async () => {
      const n = await victim.evaluate(() => document.querySelectorAll('#participant-list li').length);
      return { ok: n === 2, detail: n };
    }, { timeoutMs: 10000 });
    assert.equal(await victim.evaluate(() => document.querySelectorAll('#participant-list .kick').length), 0);
  });
  await step(t, 'Vic raises a hand with the button; Mia sees it and lowers it', async () => {
    await victim.click('#hand-button');
    await openTab(mod, 'people');
    await waitFor('Mia to see Vic\'s hand, with Lower hand', async () => {
      const n = await mod.evaluate(() => document.querySelectorAll('#participant-list .state-hand, #participant-list .lower-hand').length);
      return { ok: n === 2, detail: n };
    }, { timeoutMs: 10000 });
    await mod.click('#participant-list .lower-hand');
    await waitFor('Vic\'s hand to be down on both pages', async () => {
      const v = await victim.evaluate(() => ({ mine: window.meeting.raisedHand, pressed: document.getElementById('hand-button').getAttribute('aria-pressed') }));
      const m = await mod.evaluate(() => document.querySelectorAll('#participant-list .state-hand').length);
      return { ok: v.mine === false && v.pressed === 'false' && m === 0, detail: { v, m } };
    }, { timeoutMs: 10000 });
  });
  await step(t, 'Mia mutes Vic: Vic\'s microphone goes off and Vic cannot turn it back on', async () => {
    await waitFor('Mia to offer Mute for Vic', async () => {
      const n = await mod.evaluate(() => document.querySelectorAll('#participant-list .mute').length);
      return { ok: n === 1, detail: n };
    }, { timeoutMs: 10000 });
    await mod.click('#participant-list .mute');
    await waitFor('Vic\'s microphone to be off, with a message', async () => {
      const v = await victim.evaluate(() => ({ mic: window.meeting.micOn, toasts: window.meeting.toasts.map((x) => x.text) }));
      return { ok: v.mic === false && v.toasts.some((x) => /moderator turned your microphone off/.test(x)), detail: v };
    }, { timeoutMs: 10000 });
    await victim.click('#mic-button');
    await sleep(1500);
    const mine = await victim.evaluate(() => ({ mic: window.meeting.micOn, producers: window.meeting.producers.filter((p) => p.source === 'mic') }));
    assert.ok(mine.producers.every((p) => p.paused), `Vic's microphone must stay paused on the server: ${JSON.stringify(mine)}`);
    const seen = await mod.evaluate(() => [...[...window.meeting.peers.values()][0].producers.values()].filter((p) => p.source === 'mic'));
    assert.ok(seen.every((p) => p.paused), `Mia must not see Vic's microphone live: ${JSON.stringify(seen)}`);
  });
  await step(t, 'Remove, confirmed, ends Vic\'s meeting with a message and drops Vic from the list', async () => {
    await openTab(mod, 'people');
    await waitFor('Mia to offer Remove for Vic', async () => {
      const n = await mod.evaluate(() => document.querySelectorAll('#participant-list .kick').length);
      return { ok: n === 1, detail: n };
    }, { timeoutMs: 10000 });
    await mod.click('#participant-list .kick');
    await mod.click('#confirm-ok');
    await waitFor('Vic to be on the left screen, told a moderator removed it', async () => {
      const s = await victim.evaluate(() => ({
        state: window.meeting.state,
        left: !document.getElementById('left-screen').hidden,
        title: document.getElementById('left-title').textContent,
      }));
      return { ok: s.state === 'closed' && s.left && /removed/.test(s.title), detail: s };
    }, { timeoutMs: 10000 });
    await waitFor('Mia to drop Vic', async () => {
      const n = await mod.evaluate(() => window.meeting.peers.size);
      return { ok: n === 0, detail: n };
    }, { timeoutMs: 10000 });
    await sleep(3000);
    const s = await victim.evaluate(() => window.meeting.state);
    assert.equal(s, 'closed', 'a removed page must not reconnect by itself');
    assert.equal(await mod.evaluate(() => window.meeting.peers.size), 0, 'Vic must not be back');
  });
  await closePeers(mod, victim);
});
