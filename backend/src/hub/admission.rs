//! Who may enter a room: the join/create decision, pure.
//!
//! A join first asks the store what the user may do in the room (`seen`),
//! to know whether it would create the room (and spend the user's room
//! quota) or is refused outright. That answer can be stale by the time the
//! room is loaded: a private room of the same name may have been created in
//! between. So the decision that counts is taken on what the store said
//! *while loading or creating the room* (`Store::enter_room`, one
//! transaction), or, for a room that was already loaded, on an answer that
//! is known to describe the loaded room.
//!
//! A loaded room's visibility never changes while it is loaded: a deleted
//! room is unloaded at once, and its name comes back as a new room.

use common::Visibility;

use crate::store::RoomAccess;

/// What a join does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Enter,
    Refuse,
    /// The answers at hand do not describe the room as loaded: ask the
    /// store again (`room_access`), then decide with that as `fresh`.
    AskStore,
}

/// Decides a join of a room loaded with `loaded` visibility.
///
/// - `fresh`: the user's access read after the loaded room existed (by the
///   load itself, or by asking again); it decides alone.
/// - `seen`: what the join saw before loading; it counts only if it
///   describes a room of the loaded visibility (`None`, "no such room",
///   never does: the room exists now, made by someone else).
pub fn admit(loaded: Visibility, seen: Option<RoomAccess>, fresh: Option<RoomAccess>) -> Admission {
    let decide = |access: RoomAccess| {
        if access.visibility == loaded && access.may_enter() {
            Admission::Enter
        } else {
            Admission::Refuse
        }
    };
    match (fresh, seen) {
        (Some(fresh), _) => decide(fresh),
        (None, _) if loaded == Visibility::Public => Admission::Enter,
        (None, Some(seen)) if seen.visibility == loaded => decide(seen),
        (None, _) => Admission::AskStore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Role;

    fn access(visibility: Visibility, role: Option<Role>) -> RoomAccess {
        RoomAccess {
            visibility,
            role,
            creator: false,
        }
    }

    const VISIBILITIES: [Visibility; 3] =
        [Visibility::Public, Visibility::Private, Visibility::Direct];

    fn accesses() -> Vec<Option<RoomAccess>> {
        let mut all = vec![None];
        for visibility in VISIBILITIES {
            for role in [None, Some(Role::Member), Some(Role::Owner)] {
                all.push(Some(access(visibility, role)));
            }
        }
        all
    }

    /// Whatever was seen, the join enters a room that is not public only on
    /// an answer about that room that names the user a member.
    #[test]
    fn a_room_that_is_not_public_is_entered_only_by_its_members() {
        for loaded in VISIBILITIES {
            for seen in accesses() {
                for fresh in accesses() {
                    let admitted = admit(loaded, seen, fresh);
                    if admitted != Admission::Enter || loaded == Visibility::Public {
                        continue;
                    }
                    let basis = fresh.or(seen).unwrap();
                    assert_eq!(basis.visibility, loaded, "{loaded:?} {seen:?} {fresh:?}");
                    assert!(basis.role.is_some(), "{loaded:?} {seen:?} {fresh:?}");
                }
            }
        }
    }

    /// The race of the hardening review, as a model: a join and the
    /// creation of a private room of the same name, in every interleaving
    /// of their steps, with or without a third person (a member) loading
    /// the room first. The stranger never gets in; she gets in exactly
    /// when her join made the room (public) first.
    #[test]
    fn a_join_racing_a_private_room_is_never_let_in() {
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Step {
            Create,
            MemberLoads,
            Check,
            Load,
        }
        // The model: the store's room, and the node's loaded room.
        #[derive(Default)]
        struct World {
            stored: Option<Visibility>,
            loaded: Option<Visibility>,
        }
        let stranger = |world: &World| world.stored.map(|visibility| access(visibility, None));
        let orders: &[&[Step]] = &[
            &[Step::Create, Step::Check, Step::Load],
            &[Step::Check, Step::Create, Step::Load],
            &[Step::Check, Step::Load, Step::Create],
            &[Step::Create, Step::MemberLoads, Step::Check, Step::Load],
            &[Step::Check, Step::Create, Step::MemberLoads, Step::Load],
            &[Step::Create, Step::Check, Step::MemberLoads, Step::Load],
        ];
        for order in orders {
            let mut world = World::default();
            let mut seen = None;
            let mut entered = None;
            for step in *order {
                match step {
                    // Creating a room that exists fails (409).
                    Step::Create if world.stored.is_none() => {
                        world.stored = Some(Visibility::Private);
                    }
                    Step::Create => {}
                    Step::MemberLoads => world.loaded = world.loaded.or(world.stored),
                    Step::Check => seen = stranger(&world),
                    Step::Load => {
                        // `enter_room`: create if absent (she may: she saw
                        // no room), read her access, same transaction;
                        // unless the room was loaded already.
                        let fresh = if world.loaded.is_some() {
                            None
                        } else {
                            world.stored.get_or_insert(Visibility::Public);
                            world.loaded = world.stored;
                            stranger(&world)
                        };
                        let loaded = world.loaded.unwrap();
                        entered = Some(match admit(loaded, seen, fresh) {
                            Admission::AskStore => admit(loaded, seen, stranger(&world)),
                            decided => decided,
                        });
                    }
                }
            }
            let made_it_public = world.stored == Some(Visibility::Public);
            assert_eq!(
                entered,
                Some(if made_it_public {
                    Admission::Enter
                } else {
                    Admission::Refuse
                }),
                "{order:?}"
            );
        }
    }

    #[test]
    fn a_stale_answer_about_another_room_is_not_trusted() {
        let member = access(Visibility::Private, Some(Role::Member));
        // She was a member of a private room by that name; it is now a
        // direct conversation (deleted and made anew).
        assert_eq!(
            admit(Visibility::Direct, Some(member), None),
            Admission::AskStore
        );
        assert_eq!(
            admit(Visibility::Private, Some(member), None),
            Admission::Enter
        );
        assert_eq!(admit(Visibility::Private, None, None), Admission::AskStore);
        assert_eq!(
            admit(
                Visibility::Public,
                None,
                Some(access(Visibility::Private, None))
            ),
            Admission::Refuse,
            "an answer that disagrees with the loaded room is not a yes"
        );
    }
}
