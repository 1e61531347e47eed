//! Replies, edits, deletes and the topic, across two browsers: each change
//! shows for both people in place, and is kept for whoever resumes.

use fantoccini::{Client, Locator};
use std::time::Duration;

use super::{WAIT, axe, gone, poll_js, say, screenshot, wait_text};

/// axe-core finds nothing on `page` as it is now.
async fn accessible(page: &Client, what: &str) {
    let found = axe(page).await;
    assert!(found.is_empty(), "{what}: {found:?}");
}

/// Clicks the `label` button of the message whose text contains `text`.
/// The buttons appear on hover; a script click stands in for the pointer.
/// A delete's "are you sure?" is answered yes.
pub async fn line_action(page: &Client, text: &str, label: &str) {
    let outcome = page
        .execute(
            "const [text, label] = arguments;
             window.confirm = () => true;
             const line = [...document.querySelectorAll('.messages .line')]
               .find(l => (l.querySelector('.content')?.textContent ?? '').includes(text));
             if (!line) return 'no line with ' + text;
             const button = [...line.querySelectorAll('.actions button')]
               .find(b => b.textContent === label);
             if (!button) return 'no ' + label + ' button';
             button.click();
             return 'ok';",
            vec![text.into(), label.into()],
        )
        .await
        .unwrap();
    assert_eq!(outcome, "ok", "{label} on {text:?}");
}

/// Changes the text of the message being edited: select all, type, Enter.
pub async fn type_edit(page: &Client, new_text: &str) {
    let area = page
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".line form.edit textarea"))
        .await
        .unwrap();
    // \u{E009} holds Control, \u{E000} releases it, \u{E007} is Enter.
    area.send_keys(&format!("\u{E009}a\u{E000}{new_text}\u{E007}"))
        .await
        .unwrap();
}

/// The text content of every line of the room on screen.
async fn lines(page: &Client) -> Vec<String> {
    let texts = page
        .execute(
            "return [...document.querySelectorAll('.messages .line')].map(l => l.textContent)",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(texts).unwrap()
}

/// In a room Alice creates (so she moderates it): she sets the topic; Bob
/// asks, Alice answers as a reply, Bob clicks the quote; Bob corrects his
/// question and both see it edited, the quote too; Bob deletes a message
/// of his; Alice, as the room's moderator, deletes another of his. A new
/// visit (a reload) shows the same: history holds messages as they are now.
pub async fn replies_edits_deletes_and_topic(alice: &Client, bob: &Client) {
    for page in [alice, bob] {
        let input = page.find(Locator::Css(".new-room input")).await.unwrap();
        input.send_keys("dinner\u{E007}").await.unwrap();
        wait_text(page, ".room-header h1", "dinner", WAIT).await;
    }
    wait_text(alice, "[data-testid=members]", "Bob", WAIT).await;

    // The topic: only Alice is offered to set it.
    wait_text(alice, "[data-testid=topic]", "Set a topic", WAIT).await;
    assert!(
        bob.find(Locator::Css("[data-testid=topic] button"))
            .await
            .is_err(),
        "Bob does not moderate the room"
    );
    alice
        .find(Locator::Css("[data-testid=topic] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let topic = alice.find(Locator::Css(".topic-edit input")).await.unwrap();
    topic.send_keys("Friday dinner\u{E007}").await.unwrap();
    wait_text(bob, "[data-testid=topic]", "Friday dinner", WAIT).await;
    // And it is a line of the log, for both.
    for page in [alice, bob] {
        wait_text(
            page,
            "[data-testid=messages] .topic-change",
            "Alice set the topic to “Friday dinner”",
            WAIT,
        )
        .await;
    }
    wait_text(alice, "[data-testid=topic]", "Friday dinner", WAIT).await;

    // A reply quotes what it answers.
    say(bob, "Meet at 6?").await;
    say(bob, "wrong room, sorry").await;
    say(bob, "spam spam spam").await;
    wait_text(alice, "[data-testid=messages]", "spam spam spam", WAIT).await;
    line_action(alice, "Meet at 6?", "Reply").await;
    wait_text(
        alice,
        ".composer .replying",
        "Replying to Bob: Meet at 6?",
        WAIT,
    )
    .await;
    say(alice, "Make it 7").await;
    wait_text(bob, "[data-testid=messages]", "Make it 7", WAIT).await;
    wait_text(bob, ".line .quote", "Meet at 6?", WAIT).await;
    bob.find(Locator::Css(".line .quote"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(bob, ".line.flash", "Meet at 6?", WAIT).await;

    // Reactions: Bob picks 👍 on Alice's answer; Alice adds hers by
    // pressing the chip, then takes it back.
    line_action(bob, "Make it 7", "React").await;
    bob.find(Locator::Css(
        ".line .picker button[aria-label='React with 👍']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(alice, ".line .chip", "👍 1", WAIT).await;
    let chip = alice.find(Locator::Css(".line .chip")).await.unwrap();
    assert_eq!(
        chip.attr("aria-pressed").await.unwrap().as_deref(),
        Some("false")
    );
    assert_eq!(chip.attr("title").await.unwrap().as_deref(), Some("Bob"));
    chip.click().await.unwrap();
    wait_text(bob, ".line .chip", "👍 2", WAIT).await;
    wait_text(alice, ".line .chip", "👍 2", WAIT).await;
    alice
        .find(Locator::Css(".line .chip[aria-pressed='true']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(bob, ".line .chip", "👍 1", WAIT).await;

    // Any emoji: Alice opens the full picker from the same row, searches,
    // picks a skin tone, and reacts with it; Bob sees it. The picker's
    // data came from the server when it first opened.
    line_action(alice, "Make it 7", "React").await;
    alice
        .find(Locator::Css(".line .picker button.more-emoji"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let search = alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".line .emoji-picker input.emoji-search"))
        .await
        .unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".line .emoji-picker .emoji-grid button.emoji"))
        .await
        .expect("the emoji loaded");
    let found = axe(alice).await;
    assert!(found.is_empty(), "axe, the emoji picker: {found:?}");
    // Glyphs of a color font not used before are drawn a moment later.
    tokio::time::sleep(Duration::from_millis(700)).await;
    screenshot(alice, "alice-emoji-picker.png").await;
    alice
        .find(Locator::Css(
            ".emoji-picker .tone[aria-label='Skin tone: medium']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    search.send_keys("wave").await.unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            ".emoji-grid button.emoji[aria-label='waving hand']",
        ))
        .await
        .expect("found by name")
        .click()
        .await
        .unwrap();
    bob.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//button[contains(@class,'chip') and contains(., '👋🏽')]",
        ))
        .await
        .expect("Bob sees Alice's 👋🏽");
    assert!(
        gone(alice, Locator::Css(".emoji-picker")).await,
        "closed once picked"
    );
    // The same picker puts an emoji in the message box, at the cursor.
    alice
        .find(Locator::Css(".composer .emoji-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".composer .emoji-picker input.emoji-search"))
        .await
        .unwrap()
        .send_keys("tada")
        .await
        .unwrap();
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            ".composer .emoji-grid button.emoji[aria-label='party popper']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let typed = poll_js(
        alice,
        "return document.querySelector('.composer textarea').value",
        |v| v == "🎉",
    )
    .await;
    assert_eq!(typed, "🎉", "inserted in the box");
    say(alice, " agreed").await;
    wait_text(bob, "[data-testid=messages]", "🎉 agreed", WAIT).await;
    // `:shortcode` completes like a mention: Enter takes the first.
    let area = alice
        .find(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    area.send_keys(":tad").await.unwrap();
    wait_text(alice, "#mention-list", ":tada:", WAIT).await;
    area.send_keys("\u{E007}").await.unwrap();
    let typed = poll_js(
        alice,
        "return document.querySelector('.composer textarea').value",
        |v| v == "🎉",
    )
    .await;
    assert_eq!(typed, "🎉", "the shortcode became its emoji");
    say(alice, " by shortcode").await;
    wait_text(bob, "[data-testid=messages]", "🎉 by shortcode", WAIT).await;

    // Bob corrects his question: both see it edited, and the quote follows.
    line_action(bob, "Meet at 6?", "Edit").await;
    type_edit(bob, "Meet at 6:30?").await;
    wait_text(
        alice,
        "[data-testid=messages]",
        "Meet at 6:30? (edited)",
        WAIT,
    )
    .await;
    wait_text(alice, ".line .quote", "Meet at 6:30?", WAIT).await;
    wait_text(
        bob,
        "[data-testid=messages]",
        "Meet at 6:30? (edited)",
        WAIT,
    )
    .await;

    // Bob deletes his own message; Alice, who moderates, deletes his spam.
    line_action(bob, "wrong room, sorry", "Delete").await;
    line_action(alice, "spam spam spam", "Delete").await;
    for page in [alice, bob] {
        for _ in 0..50 {
            let texts = lines(page).await;
            if !texts
                .iter()
                .any(|t| t.contains("wrong room") || t.contains("spam"))
                && texts
                    .iter()
                    .filter(|t| t.contains("This message was deleted."))
                    .count()
                    == 2
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let texts = lines(page).await;
        assert!(
            !texts
                .iter()
                .any(|t| t.contains("wrong room") || t.contains("spam")),
            "deleted text is gone: {texts:?}"
        );
        assert_eq!(
            texts
                .iter()
                .filter(|t| t.contains("This message was deleted."))
                .count(),
            2,
            "{texts:?}"
        );
    }
    screenshot(alice, "alice-changes.png").await;
    // Replies, reactions, an edited and deleted messages, the topic, with
    // the emoji picker open.
    line_action(alice, "Make it 7", "React").await;
    alice
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".line .picker"))
        .await
        .unwrap();
    accessible(alice, "a room with replies, reactions and the picker").await;
    every_reaction_is_visible(alice).await;
    // Escape closes the picker, from the emoji the keyboard is on.
    alice
        .find(Locator::Css(".line .picker button"))
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    assert!(
        gone(alice, Locator::Css(".line .picker")).await,
        "Escape closed the emoji picker"
    );

    // A reload: history shows the room as it is now.
    bob.refresh().await.unwrap();
    wait_text(bob, "[data-testid=banner]", "Connected", WAIT).await;
    wait_text(bob, ".room-header h1", "dinner", WAIT).await;
    wait_text(bob, "[data-testid=topic]", "Friday dinner", WAIT).await;
    wait_text(
        bob,
        "[data-testid=messages] .topic-change",
        "set the topic to “Friday dinner”",
        WAIT,
    )
    .await;
    wait_text(
        bob,
        "[data-testid=messages]",
        "Meet at 6:30? (edited)",
        WAIT,
    )
    .await;
    wait_text(bob, ".line .quote", "Meet at 6:30?", WAIT).await;
    let texts = lines(bob).await;
    assert!(
        !texts.iter().any(|t| t.contains("spam")),
        "after a reload too: {texts:?}"
    );

    // A mention: Bob looks at another room; Alice types "@bo", picks Bob
    // from the suggestions with Enter, and sends. Bob's room list marks
    // the room as mentioning him, and the tab's title counts it.
    open_room(bob, "general").await;
    // Bob's tab is in the background: the one thing headless Chromium
    // cannot do by itself, so `document.hidden` is made to say so. The
    // browser's real Notification is wrapped to record what is shown.
    bob.execute(
        "window.__hidden = true;
         Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__hidden });
         window.__shown = [];
         const Real = window.Notification;
         window.Notification = class extends Real {
           constructor(title, options) { super(title, options); window.__shown.push([title, options.body]); }
         };",
        vec![],
    )
    .await
    .unwrap();
    let area = alice
        .find(Locator::Css(".composer textarea"))
        .await
        .unwrap();
    area.send_keys("@bo").await.unwrap();
    wait_text(alice, ".mentions-list", "Bob", WAIT).await;
    accessible(alice, "the composer completing a mention").await;
    area.send_keys("\u{E007}").await.unwrap();
    assert_eq!(area.prop("value").await.unwrap().as_deref(), Some("@bob "));
    area.send_keys("see you there\u{E007}").await.unwrap();
    wait_text(bob, ".rooms .badge.mention", "1", WAIT).await;
    let title = bob.execute("return document.title", vec![]).await.unwrap();
    assert_eq!(title, "(1) Hearth");
    let shown = bob.execute("return window.__shown", vec![]).await.unwrap();
    assert_eq!(
        shown,
        serde_json::json!([["Alice in #dinner", "@bob see you there"]]),
        "a desktop notification for the mention, none for anything else"
    );
    bob.execute("window.__hidden = false", vec![])
        .await
        .unwrap();
    open_room(bob, "dinner").await;
    wait_text(bob, ".line .mention.you", "@bob", WAIT).await;
    assert_eq!(
        poll_js(bob, "return document.title", |v| v == "Hearth").await,
        "Hearth",
        "read: nothing unread"
    );
    screenshot(bob, "bob-mention.png").await;

    // A direct message: Alice starts one from Bob's name in the members
    // list; it goes by his name. Bob's list shows it (under hers) once it
    // has a message; he answers there.
    alice
        .find(Locator::Css(
            "[data-testid=members] button[aria-label='Message Bob']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(alice, ".room-header h1", "Bob · @bob", WAIT).await;
    say(alice, "just between us").await;
    wait_text(alice, "[data-testid=messages]", "just between us", WAIT).await;
    // Told by the server (`rooms_changed`), well before the room list's
    // 10-s refresh would have found it.
    wait_text(
        bob,
        "[data-testid=directs]",
        "Alice",
        Duration::from_secs(5),
    )
    .await;
    bob.find(Locator::XPath(
        "//ul[@data-testid='directs']//button[contains(., 'Alice')]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(bob, ".room-header h1", "Alice · @alice", WAIT).await;
    wait_text(bob, "[data-testid=messages]", "just between us", WAIT).await;
    say(bob, "sure").await;
    wait_text(alice, "[data-testid=messages]", "sure", WAIT).await;
    screenshot(bob, "bob-direct.png").await;
    accessible(bob, "a direct conversation").await;

    // Search: Bob finds an old message of a room he never opened; the
    // result opens that room at the message, paging in older history (it
    // is older than the newest 50 a join shows).
    let search = bob.find(Locator::Css(".search input")).await.unwrap();
    search.send_keys("History 01\u{E007}").await.unwrap();
    wait_text(bob, "[data-testid=search-results]", "#history", WAIT).await;
    wait_text(bob, "[data-testid=search-results]", "1 found", WAIT).await;
    screenshot(bob, "bob-search.png").await;
    accessible(bob, "search results").await;
    bob.find(Locator::Css(".search-results .result"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(bob, ".room-header h1", "history", WAIT).await;
    wait_text(bob, ".line.flash", "history #01", WAIT).await;
    // Escape closes search results too.
    let search = bob.find(Locator::Css(".search input")).await.unwrap();
    search.clear().await.unwrap();
    search.send_keys("History 01\u{E007}").await.unwrap();
    wait_text(bob, "[data-testid=search-results]", "1 found", WAIT).await;
    search.send_keys("\u{E00C}").await.unwrap();
    assert!(
        gone(bob, Locator::Css("[data-testid=search-results]")).await,
        "Escape closed the search results"
    );

    // The members panel asks for the room's roles when another room is on
    // screen (or after an action), not on every change of the chat: it
    // did, 147 times in this flow, enough to meet the API's rate limit.
    let fetched = alice
        .execute(
            "return performance.getEntriesByType('resource')
               .filter(e => e.name.includes('/members')).length",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        fetched.as_u64().is_some_and(|n| n < 20),
        "roles fetched {fetched} times"
    );
    // Back to #general, where the next part of the test talks.
    for page in [alice, bob] {
        open_room(page, "general").await;
    }
}

/// Opens one of the rooms the person is in from the sidebar.
async fn open_room(page: &Client, room: &str) {
    page.find(Locator::XPath(&format!(
        "//ul[@data-testid='rooms']//button[contains(., '{room}')]"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(page, ".room-header h1", room, WAIT).await;
}

/// Each emoji of the open picker, drawn on a canvas with the button's own
/// font and colour over the picker's background, leaves pixels that stand
/// out from it: none is a glyph in the background's colour (three of
/// eight were, white on white, before the emoji fonts were named).
async fn every_reaction_is_visible(page: &Client) {
    let counts = page
        .execute(
            "const picker = document.querySelector('.line .picker');
             const bg = getComputedStyle(picker).backgroundColor;
             const [br, bgr, bb] = bg.match(/\\d+/g).map(Number);
             return [...picker.querySelectorAll('button:not(.more-emoji)')].map(b => {
               const cs = getComputedStyle(b);
               const c = document.createElement('canvas');
               c.width = 64; c.height = 64;
               const x = c.getContext('2d');
               x.fillStyle = bg; x.fillRect(0, 0, 64, 64);
               x.font = cs.font; x.fillStyle = cs.color; x.textBaseline = 'top';
               x.fillText(b.textContent.trim(), 4, 4);
               const d = x.getImageData(0, 0, 64, 64).data;
               let n = 0;
               for (let i = 0; i < d.length; i += 4) {
                 if (Math.abs(d[i] - br) + Math.abs(d[i + 1] - bgr) + Math.abs(d[i + 2] - bb) > 96) n++;
               }
               return [b.textContent.trim(), n];
             });",
            vec![],
        )
        .await
        .unwrap();
    let counts = counts.as_array().unwrap();
    assert_eq!(
        counts.len(),
        common::validate::REACTIONS.len(),
        "{counts:?}"
    );
    for pair in counts {
        let visible = pair[1].as_u64().unwrap();
        assert!(visible > 20, "{} draws {visible} visible pixels", pair[0]);
    }
}
