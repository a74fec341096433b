// The user journeys of issue 6 in real headless Chromium, one browser per user,
// against the daemon that ./run started: sign up, search, chat with typing and
// read ticks, an image, a video call with media both ways, mute, screen share,
// hang up, and a three-way group call. The journeys build on each other and run
// in order; once one fails the rest are skipped.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Browser, step, poll, mediaFlows, makePng } from './lib/harness.mjs';

const PASSWORD = 'correct horse battery';
const suffix = process.env.QM_USER_SUFFIX || '';
const ALICE = { username: 'alice' + suffix, name: 'Alice Liddell' };
const BOB = { username: 'bob' + suffix, name: 'Bob Stone' };
const CAROL = { username: 'carol' + suffix, name: 'Carol Reyes' };

/** @type {Browser} */ let alice;
/** @type {Browser} */ let bob;
/** @type {Browser} */ let carol;
let failed = false;

/** A journey: skipped once an earlier one failed, and dumps browser errors when it fails. */
function journey(name, timeout, fn) {
  test(name, { timeout }, async (t) => {
    if (failed) {
      t.skip('an earlier journey failed');
      return;
    }
    try {
      await fn();
    } catch (err) {
      failed = true;
      for (const b of [alice, bob, carol]) {
        if (!b) continue;
        for (const e of b.errors) console.log(e);
        if (b.page) await b.screenshot(`failure-${b.label}`).catch(() => {});
      }
      throw err;
    }
  });
}

describe('Quick Meet in the browser', { concurrency: false }, () => {
  before(async () => {
    [alice, bob, carol] = await step('launch three Chromium instances', 60_000, () =>
      Promise.all([new Browser('alice').launch(), new Browser('bob').launch(), new Browser('carol').launch()]),
    );
  });

  after(async () => {
    await Promise.all([alice, bob, carol].filter(Boolean).map((b) => b.close()));
  });


  journey('sign up three users', 60_000, async () => {
    await step('login screen renders', 10_000, async () => {
      await alice.page.getByRole('heading', { name: 'Sign in' }).waitFor();
      await alice.screenshot('login');
    });
    await step('signup form errors inline', 10_000, async () => {
      const p = alice.page;
      await p.getByRole('button', { name: 'Create an account' }).click();
      await p.locator('#username').fill('a');
      await p.locator('#password').fill('short');
      await p.getByRole('button', { name: 'Create account' }).click();
      await p.locator('#username-err', { hasText: '3–32 characters' }).waitFor();
      await p.locator('#password-err', { hasText: '8 to 256' }).waitFor();
      await p.getByRole('button', { name: 'Sign in' }).click(); // back to login mode for signup()
    });
    await step('alice signs up', 15_000, () => alice.signup(ALICE.username, ALICE.name, PASSWORD));
    await step('bob signs up', 15_000, () => bob.signup(BOB.username, BOB.name, PASSWORD));
    await step('carol signs up', 15_000, () => carol.signup(CAROL.username, CAROL.name, PASSWORD));
    await step('a taken username is an inline error', 10_000, async () => {
      const extra = await new Browser('extra').launch();
      try {
        const p = extra.page;
        await p.getByRole('button', { name: 'Create an account' }).click();
        await p.locator('#username').fill(ALICE.username.toUpperCase());
        await p.locator('#password').fill(PASSWORD);
        await p.getByRole('button', { name: 'Create account' }).click();
        await p.locator('#username-err', { hasText: 'taken' }).waitFor();
      } finally {
        await extra.close();
      }
    });
  });

  journey('find each other by search', 30_000, async () => {
    await step('alice finds bob', 10_000, () => alice.openDmBySearch('bob', BOB.name));
    await step('bob finds alice', 10_000, () => bob.openDmBySearch('lidd', ALICE.name));
    await step('the DM header shows bob online', 10_000, () =>
      alice.page.locator('.chat-status', { hasText: 'online' }).waitFor(),
    );
  });

  journey('exchange messages with typing and read ticks', 45_000, async () => {
    const a = alice.page;
    const b = bob.page;
    await step('typing shows on the other side', 10_000, async () => {
      await a.getByRole('textbox', { name: 'Message' }).pressSequentially('Hello Bob', { delay: 20 });
      await b.locator('.typing-line', { hasText: 'typing…' }).waitFor();
    });
    await step('the message appears for bob', 10_000, async () => {
      await a.getByRole('textbox', { name: 'Message' }).press('Enter');
      await b.locator('.msg.theirs .text', { hasText: 'Hello Bob' }).waitFor();
      assert.equal(await a.getByRole('textbox', { name: 'Message' }).inputValue(), '');
    });
    await step('the typing line clears', 10_000, () =>
      poll(() => b.locator('.typing-line').textContent(), (t) => t === '', { what: 'typing line empty', timeout: 8000 }),
    );
    await step("alice's tick turns to read", 10_000, () =>
      a.locator('.msg.mine', { hasText: 'Hello Bob' }).getByRole('img', { name: 'Read' }).waitFor(),
    );
    await step('bob answers with two lines (Shift+Enter)', 10_000, async () => {
      const box = b.getByRole('textbox', { name: 'Message' });
      await box.pressSequentially('Hi Alice!');
      await box.press('Shift+Enter');
      await box.pressSequentially('How are you?');
      await box.press('Enter');
      await a.locator('.msg.theirs .text', { hasText: 'How are you?' }).waitFor();
      assert.equal(await a.locator('.msg.theirs .text').last().textContent(), 'Hi Alice!\nHow are you?');
      await b.locator('.msg.mine', { hasText: 'How are you?' }).getByRole('img', { name: 'Read' }).waitFor();
    });
    await step('user content stays text', 10_000, async () => {
      const evil = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b>';
      await a.getByRole('textbox', { name: 'Message' }).fill(evil);
      await a.getByRole('textbox', { name: 'Message' }).press('Enter');
      const bubble = b.locator('.msg.theirs .text').last();
      await poll(() => bubble.textContent(), (t) => t === evil, { what: 'literal markup', timeout: 8000 });
      assert.equal(await b.locator('.msg.theirs .text b').count(), 0);
      assert.equal(await b.evaluate(() => document.body.dataset.pwned || ''), '');
    });
    await step('a reload keeps bob signed in, with the history', 20_000, async () => {
      await b.reload({ waitUntil: 'domcontentloaded' });
      await b.locator('.sidebar .me-text strong', { hasText: BOB.name }).waitFor();
      await bob.openConversation(ALICE.name);
      await b.locator('.msg.theirs .text', { hasText: 'Hello Bob' }).waitFor();
      await b.locator('.msg.mine .text', { hasText: 'How are you?' }).waitFor();
      await b.waitForFunction(() => !document.body.classList.contains('offline'));
    });
  });

  journey('send an image', 45_000, async () => {
    const png = makePng(320, 200);
    await step('alice attaches a PNG', 20_000, async () => {
      await alice.page.locator('.composer input[type="file"]').setInputFiles({ name: 'gradient.png', mimeType: 'image/png', buffer: png });
      await alice.page.locator('.msg.mine img.att-img[src^="blob:"]').waitFor();
    });
    await step('bob sees the preview', 20_000, async () => {
      const img = bob.page.locator('.msg.theirs img.att-img');
      await img.waitFor();
      const size = await poll(
        () => img.evaluate((el) => [/** @type {HTMLImageElement} */ (el).naturalWidth, /** @type {HTMLImageElement} */ (el).naturalHeight]),
        ([w]) => w > 0,
        { what: 'image decoded', timeout: 15_000 },
      );
      assert.deepEqual(size, [320, 200]);
    });
    await step('click enlarges it', 10_000, async () => {
      await bob.page.getByRole('button', { name: 'Enlarge gradient.png' }).click();
      await bob.page.locator('dialog.lightbox img.lightbox-img').waitFor();
      await bob.page.keyboard.press('Escape');
      await bob.page.locator('dialog.lightbox').waitFor({ state: 'detached' });
    });
    await step('chat screenshots (desktop and a 360 px phone)', 15_000, async () => {
      await alice.screenshot('chat');
      const p = bob.page;
      const size = p.viewportSize();
      await p.setViewportSize({ width: 360, height: 740 });
      try {
        await p.locator('.msg.theirs img.att-img').scrollIntoViewIfNeeded();
        await bob.screenshot('chat-phone');
        // The phone shows one pane: back to the list, which shows the conversation.
        await p.getByRole('button', { name: 'Back to conversations' }).click();
        await p.getByRole('list', { name: 'Conversations' }).getByRole('button', { name: ALICE.name }).waitFor();
        await bob.screenshot('list-phone');
        await p.getByRole('list', { name: 'Conversations' }).getByRole('button', { name: ALICE.name }).click();
        await p.locator('.chat-pane .chat-title', { hasText: ALICE.name }).waitFor();
      } finally {
        if (size) await p.setViewportSize(size);
      }
    });
  });

  journey('video call with media both ways, mute, screen share, hang up', 120_000, async () => {
    const a = alice.page;
    const b = bob.page;
    await step('alice calls, bob sees the incoming call', 15_000, async () => {
      await a.getByRole('button', { name: 'Video call' }).click();
      await b.getByRole('alertdialog', { name: `Incoming call from ${ALICE.name}` }).waitFor();
      await a.locator('.call-status', { hasText: 'Calling…' }).waitFor();
      await bob.screenshot('incoming-call');
    });
    const t0 = Date.now();
    await step('bob accepts; both peer connections connect', 20_000, async () => {
      await b.getByRole('button', { name: 'Accept' }).click();
      await Promise.all([
        poll(() => alice.peerStats(), (s) => s.length === 1 && s[0].state === 'connected', { what: 'alice connected' }),
        poll(() => bob.peerStats(), (s) => s.length === 1 && s[0].state === 'connected', { what: 'bob connected' }),
      ]);
      console.log(`    accept → connected on both sides: ${Date.now() - t0} ms`);
    });
    await step('video frames and audio arrive on both sides', 30_000, async () => {
      const [sa, sb] = await Promise.all([
        poll(() => alice.peerStats(), (s) => mediaFlows(s, 1), { what: 'alice receives media', timeout: 25_000 }),
        poll(() => bob.peerStats(), (s) => mediaFlows(s, 1), { what: 'bob receives media', timeout: 25_000 }),
      ]);
      console.log(`    alice: ${JSON.stringify(sa[0])}\n    bob:   ${JSON.stringify(sb[0])}`);
      // The remote video is shown, and the timer runs.
      await a.locator('.stage .tile:not(.local).has-video').waitFor();
      await b.locator('.stage .tile:not(.local).has-video').waitFor();
      await a.locator('.call-timer', { hasText: /\d:\d\d/ }).waitFor();
    });
    await step('video call screenshot', 10_000, async () => {
      await new Promise((r) => setTimeout(r, 800));
      await alice.screenshot('video-call');
    });
    await step('alice mutes → bob sees her muted', 10_000, async () => {
      const remoteMuted = b.locator('.stage .tile:not(.local) .ind[aria-label="Muted"]');
      assert.equal(await remoteMuted.isVisible(), false);
      await a.getByRole('button', { name: 'Mute', exact: true }).click();
      await a.getByRole('button', { name: 'Unmute' }).waitFor();
      await remoteMuted.waitFor({ state: 'visible' });
      await a.getByRole('button', { name: 'Unmute' }).click();
      await remoteMuted.waitFor({ state: 'hidden' });
    });
    await step('alice shares her screen → bob receives 1280x720', 30_000, async () => {
      const before = (await bob.peerStats())[0];
      await a.getByRole('button', { name: 'Share screen' }).click();
      await a.getByRole('button', { name: 'Stop sharing' }).waitFor();
      await b.locator('.stage .tile:not(.local) .ind[aria-label="Sharing screen"]').waitFor({ state: 'visible' });
      const s = await poll(
        () => bob.peerStats(),
        (st) => st.length === 1 && st[0].width === 1280 && st[0].height === 720 && st[0].framesDecoded > before.framesDecoded,
        { what: 'a 1280x720 screen at bob', timeout: 25_000 },
      );
      const shown = await b.locator('.stage .tile:not(.local) video').evaluate((v) => [/** @type {HTMLVideoElement} */ (v).videoWidth, /** @type {HTMLVideoElement} */ (v).videoHeight]);
      console.log(`    camera before: ${before.width}x${before.height}; screen: ${s[0].width}x${s[0].height}; <video> shows ${shown.join('x')}`);
    });
    await step('alice stops sharing → back to the camera', 20_000, async () => {
      await a.getByRole('button', { name: 'Stop sharing' }).click();
      await b.locator('.stage .tile:not(.local) .ind[aria-label="Sharing screen"]').waitFor({ state: 'hidden' });
      await a.getByRole('button', { name: 'Share screen' }).waitFor();
    });
    await step('alice hangs up → both back in the chat', 15_000, async () => {
      await a.getByRole('button', { name: 'Hang up' }).click();
      for (const p of [a, b]) {
        await p.locator('.call-view').waitFor({ state: 'detached' });
        await p.locator('.chat-pane .chat-title').waitFor({ state: 'visible' });
        await p.getByRole('button', { name: 'Video call' }).waitFor();
      }
      await poll(() => alice.peerStats(), (s) => s.length === 0, { what: 'alice closed her peer connection', timeout: 5000 });
      await poll(() => bob.peerStats(), (s) => s.length === 0, { what: 'bob closed his peer connection', timeout: 5000 });
      assert.equal(await b.getByRole('button', { name: 'Video call' }).isEnabled(), true);
    });
  });

  journey('audio call: declined, then answered and ended by the callee', 60_000, async () => {
    const a = alice.page;
    const b = bob.page;
    await step('bob calls, alice declines → bob is told', 15_000, async () => {
      await b.getByRole('button', { name: 'Audio call' }).click();
      await a.getByRole('alertdialog', { name: `Incoming call from ${BOB.name}` }).getByText('Incoming audio call').waitFor();
      await a.getByRole('button', { name: 'Decline' }).click();
      await b.locator('.toast', { hasText: 'Call declined.' }).last().waitFor();
      assert.equal(await a.locator('.toast', { hasText: 'Call declined.' }).count(), 0, 'the one who declined is not told "declined"');
      for (const p of [a, b]) await p.locator('.call-layer:not([hidden])').waitFor({ state: 'detached' });
    });
    await step('bob calls again, alice answers; audio flows both ways', 25_000, async () => {
      await b.getByRole('button', { name: 'Audio call' }).click();
      await a.getByRole('button', { name: 'Accept' }).click();
      const audio = (s) => s.length === 1 && s[0].state === 'connected' && s[0].audioBytes > 0;
      await Promise.all([
        poll(() => alice.peerStats(), audio, { what: 'alice hears bob' }),
        poll(() => bob.peerStats(), audio, { what: 'bob hears alice' }),
      ]);
      // Audio only: avatars instead of video, and no camera preview.
      await a.locator('.call-layer.audio-only .stage .tile:not(.local):not(.has-video) .tile-avatar').waitFor();
      await a.locator('.call-timer', { hasText: /\d:\d\d/ }).waitFor();
      await alice.screenshot('audio-call');
    });
    await step('alice hangs up → bob is told and both are back in the chat', 15_000, async () => {
      await a.getByRole('button', { name: 'Hang up' }).click();
      await b.locator('.toast', { hasText: 'Call ended.' }).last().waitFor();
      for (const p of [a, b]) {
        await p.locator('.call-view').waitFor({ state: 'detached' });
        await p.getByRole('button', { name: 'Audio call' }).waitFor();
      }
    });
  });

  journey('three members in a group call, all connected', 150_000, async () => {
    const team = 'Team ' + (suffix || 'Rocket');
    await step('alice creates a group with bob and carol', 20_000, async () => {
      const a = alice.page;
      await a.getByRole('button', { name: 'New group' }).click();
      await a.locator('#g-name').fill(team);
      await a.getByRole('checkbox', { name: 'Add ' + BOB.name }).check();
      await a.getByRole('checkbox', { name: 'Add ' + CAROL.name }).check();
      await a.getByRole('button', { name: 'Create group' }).click();
      await a.locator('.chat-pane .chat-title', { hasText: team }).waitFor();
      await a.locator('.chat-status', { hasText: '3 members' }).waitFor();
      const box = a.getByRole('textbox', { name: 'Message' });
      await box.fill('Call in a minute?');
      await box.press('Enter');
    });
    await step('bob and carol see the group with an unread badge and open it', 20_000, async () => {
      for (const b of [bob, carol]) {
        await b.page.getByRole('list', { name: 'Conversations' }).getByRole('button', { name: team }).locator('.badge', { hasText: '1' }).waitFor();
      }
      await Promise.all([bob.openConversation(team), carol.openConversation(team)]);
      await carol.page.locator('.msg.theirs', { hasText: 'Call in a minute?' }).locator('.sender', { hasText: ALICE.name }).waitFor();
    });
    const t0 = Date.now();
    await step('all three join the call', 30_000, async () => {
      for (const b of [alice, bob, carol]) {
        await b.page.getByRole('button', { name: 'Join call' }).click();
        await b.page.locator('.call-view.group').waitFor();
      }
    });
    await step('three pairs connected with media flowing', 60_000, async () => {
      const all = await Promise.all(
        [alice, bob, carol].map((b) => poll(() => b.peerStats(), (s) => mediaFlows(s, 2), { what: `${b.label} has 2 live peers`, timeout: 55_000, interval: 500 })),
      );
      console.log(`    join → 3 pairs connected with media: ${Date.now() - t0} ms`);
      all.forEach((s, i) => console.log(`    ${['alice', 'bob', 'carol'][i]}: ${JSON.stringify(s)}`));
      for (const b of [alice, bob, carol]) {
        try {
          await poll(() => b.page.locator('.call-view.group .tile.has-video').count(), (n) => n === 3, { what: `${b.label} shows 3 video tiles` });
        } catch (err) {
          // Say which tile lacks its video, and what the page knows of it.
          const tiles = await b.page.locator('.call-view.group .tile').evaluateAll((els) =>
            els.map((el) => ({ class: el.className, label: el.querySelector('.tile-label')?.textContent, tracks: /** @type {HTMLVideoElement} */ (el.querySelector('video'))?.srcObject?.getTracks().map((t) => `${t.kind}:${t.readyState}`) })),
          );
          console.log(`    ${b.label} tiles: ${JSON.stringify(tiles)}`);
          throw err;
        }
        assert.equal(await b.page.locator('.call-view.group .tile-state').filter({ hasText: /connect/ }).count(), 0);
      }
    });
    await step('group call screenshot', 10_000, async () => {
      await new Promise((r) => setTimeout(r, 800));
      await alice.screenshot('group-call');
    });
    await step('carol mutes → the others see it', 10_000, async () => {
      await carol.page.getByRole('button', { name: 'Mute', exact: true }).click();
      for (const b of [alice, bob]) {
        await b.page.locator('.call-view.group .tile', { hasText: CAROL.name }).locator('.ind[aria-label="Muted"]').waitFor({ state: 'visible' });
      }
    });
    await step('everyone leaves', 20_000, async () => {
      await carol.page.getByRole('button', { name: 'Hang up' }).click();
      await poll(() => alice.peerStats(), (s) => s.length === 1, { what: 'alice drops carol', timeout: 10_000 });
      await alice.page.getByRole('button', { name: 'Hang up' }).click();
      await bob.page.getByRole('button', { name: 'Hang up' }).click();
      for (const b of [alice, bob, carol]) {
        await b.page.locator('.call-view').waitFor({ state: 'detached' });
        await b.page.getByRole('button', { name: 'Join call' }).waitFor();
      }
    });
  });

  journey('no Content-Security-Policy violations or script errors', 5_000, async () => {
    const all = [alice, bob, carol].flatMap((b) => b.errors);
    for (const e of all) console.log('    ' + e);
    assert.deepEqual(all.filter((e) => /Content.Security.Policy|pageerror/i.test(e)), []);
  });
});
