use crate::*;

#[test]
fn oracle_is_exact_on_rendered_ground_truth() {
    let world = World::default();
    for split in [Split::Train, Split::Validation, Split::Test, Split::HeldOut] {
        let mut report = FaithfulnessReport::default();
        let mut failures = Vec::new();
        for ex in world.examples(split, 1500) {
            let verdict = judge(&SceneSpec::from(&ex.scene), &analyse(&ex.image));
            if !verdict.all_correct() && failures.len() < 5 {
                failures.push((ex.scene.clone(), analyse(&ex.image), verdict.clone()));
            }
            report.add(&verdict);
        }
        println!(
            "{split:?}: oracle all-correct {:.4} over {} scenes",
            report.all_correct_rate(),
            report.images
        );
        assert!(
            report.all_correct_rate() >= 0.999,
            "{split:?}: {:?}\n{failures:#?}",
            report.per_attribute
        );
    }
}

#[test]
fn examples_are_deterministic_and_splits_disjoint() {
    let world = World::default();
    let a = world.example(Split::Train, 17);
    let b = world.example(Split::Train, 17);
    assert_eq!(a.scene, b.scene);
    assert_eq!(a.image, b.image);
    assert_eq!(a.caption, b.caption);
    let c = world.example(Split::Test, 17);
    assert!(a.scene != c.scene || a.image != c.image);
    for ex in world.examples(Split::Train, 500) {
        assert!(ex.scene.objects.iter().all(|o| !world.is_held_out(o)));
    }
    for ex in world.examples(Split::HeldOut, 200) {
        assert!(ex.scene.objects.iter().any(|o| world.is_held_out(o)));
    }
}

#[test]
fn captions_have_several_phrasings() {
    let scene = Scene {
        background: 128,
        objects: vec![Object {
            shape: Shape::Circle,
            colour: Colour::Red,
            size: Size::Small,
            cell: Cell { row: 0, col: 0 },
        }],
        relation: None,
    };
    let spec = SceneSpec::from(&scene);
    let captions: Vec<String> = (0..SINGLE_PHRASINGS).map(|v| spec.caption(v)).collect();
    assert_eq!(captions[0], "a small red circle in the top left");
    assert_eq!(captions[1], "top left: small red circle");
    let unique: std::collections::HashSet<&String> = captions.iter().collect();
    assert_eq!(unique.len(), SINGLE_PHRASINGS);
    let under = SceneSpec {
        objects: vec![ObjectSpec {
            shape: Some(Shape::Circle),
            ..Default::default()
        }],
        relation: None,
    };
    assert_eq!(under.caption(0), "a circle");
    let pair = Scene {
        background: 20,
        objects: vec![
            Object {
                shape: Shape::Circle,
                colour: Colour::Red,
                size: Size::Large,
                cell: Cell { row: 1, col: 0 },
            },
            Object {
                shape: Shape::Square,
                colour: Colour::Blue,
                size: Size::Small,
                cell: Cell { row: 1, col: 2 },
            },
        ],
        relation: Some(Relation::LeftOf),
    };
    assert_eq!(
        SceneSpec::from(&pair).caption(0),
        "a large red circle left of a small blue square"
    );
    assert_eq!(
        SceneSpec::from(&pair).caption(2),
        "a small blue square with a large red circle to its left"
    );
}

#[test]
fn judge_catches_wrong_attributes() {
    let world = World::default();
    let ex = world
        .examples(Split::Train, 50)
        .into_iter()
        .find(|e| e.scene.objects.len() == 1)
        .unwrap();
    let mut spec = SceneSpec::from(&ex.scene);
    let o = &mut spec.objects[0];
    o.colour = Some(if o.colour == Some(Colour::Red) {
        Colour::Blue
    } else {
        Colour::Red
    });
    let verdict = judge(&spec, &analyse(&ex.image));
    assert!(!verdict.all_correct());
    assert!(!verdict.attributes["colour"]);
    assert!(verdict.attributes["shape"]);
    // An empty image fails everything but stays well-defined.
    let blank = image::RgbImage::from_pixel(32, 32, image::Rgb([128, 128, 128]));
    assert!(analyse(&blank).is_empty());
    assert!(!judge(&spec, &[]).all_correct());
}

#[test]
fn diversity_of_the_data_is_near_uniform() {
    let world = World::default();
    let detections: Vec<Vec<Detection>> = world
        .examples(Split::Train, 3000)
        .into_iter()
        .filter(|e| e.scene.objects.len() == 1)
        .map(|e| analyse(&e.image))
        .collect();
    let positions = Histogram::of(Attribute::Position, &detections);
    assert!(positions.normalised_entropy(9) > 0.98, "{positions:?}");
    let all_top_left = Histogram(std::iter::once(("00".to_string(), 1.0)).collect());
    assert!(positions.total_variation(&all_top_left) > 0.8);
}

#[test]
fn frechet_distance_matches_closed_form_and_ranks_corruption() {
    // 1-d check: N(0, 1) vs N(3, 4): (0-3)² + 1 + 4 - 2·sqrt(4) = 10.
    let a = (vec![0.0], vec![vec![1.0]]);
    let b = (vec![3.0], vec![vec![4.0]]);
    assert!((frechet_distance(&a, &b) - 10.0).abs() < 1e-9);
    let (values, _) = symmetric_eigen(&[vec![2.0, 1.0], vec![1.0, 2.0]]);
    let mut values = values;
    values.sort_by(f64::total_cmp);
    assert!((values[0] - 1.0).abs() < 1e-9 && (values[1] - 3.0).abs() < 1e-9);

    let net = FeatureNet::shipped().unwrap();
    let world = World::default();
    let images = |split, n| {
        world
            .examples(split, n)
            .into_iter()
            .map(|e| e.image)
            .collect::<Vec<_>>()
    };
    let reference = images(Split::Validation, 600);
    let real = images(Split::Test, 600);
    let corrupt = |imgs: &[image::RgbImage], sigma: f32, seed: u64| -> Vec<image::RgbImage> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        imgs.iter()
            .map(|img| {
                let mut out = img.clone();
                for p in out.pixels_mut() {
                    for c in p.0.iter_mut() {
                        let noise: f32 = (rng.random::<f32>() - 0.5) * 2.0 * sigma;
                        *c = (*c as f32 + noise).clamp(0.0, 255.0) as u8;
                    }
                }
                out
            })
            .collect()
    };
    let fid_real = net.frechet_distance(&reference, &real).unwrap();
    let fid_light = net
        .frechet_distance(&reference, &corrupt(&real, 40.0, 1))
        .unwrap();
    let fid_heavy = net
        .frechet_distance(&reference, &corrupt(&real, 120.0, 2))
        .unwrap();
    println!("our FID: real {fid_real:.3} < light {fid_light:.3} < heavy {fid_heavy:.3}");
    assert!(fid_real < fid_light && fid_light < fid_heavy);
}

#[test]
fn a_captioned_pair_asks_for_no_cells_and_still_judges_its_own_image_correct() {
    let world = World::default();
    let pair = world
        .examples(Split::Train, 50)
        .into_iter()
        .find(|e| e.scene.objects.len() == 2)
        .unwrap();
    let spec = SceneSpec::captioned(&pair.scene);
    assert!(spec.objects.iter().all(|o| o.cell.is_none()));
    assert_eq!(spec.caption(0), SceneSpec::from(&pair.scene).caption(0));
    let verdict = judge(&spec, &analyse(&pair.image));
    assert!(verdict.all_correct(), "{verdict:?}");
    assert!(!verdict.attributes.contains_key("position"));
    let single = world
        .examples(Split::Train, 50)
        .into_iter()
        .find(|e| e.scene.objects.len() == 1)
        .unwrap();
    assert_eq!(
        SceneSpec::captioned(&single.scene),
        SceneSpec::from(&single.scene)
    );
}
