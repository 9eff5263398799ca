#!/usr/bin/env python3
"""Writes the tiny benchmark sets of tests/test_eval_tasks.c under tests/fixtures/eval/sets/: each set in its
official file format (VQAv2/OK-VQA questions + annotations, TextVQA's single JSON, VizWiz's list, Karpathy's
dataset_coco.json / dataset_flickr30k.json and COCO's captions_*.json), small JPEG images, a predictions file per
task in the official submission format, and expected.json with the scores tests/ref/metrics_ref.py (the
independent Python metrics) gives those predictions. Run: /usr/bin/python3 tests/ref/eval_sets.py
"""
import json
import os
import random
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_ref as M  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'eval', 'sets')
COLOURS = ['red', 'blue', 'green', 'yellow']


def image(path, k):
    im = Image.new('RGB', (40, 32), (250, 250, 250))
    d = ImageDraw.Draw(im)
    c = {'red': (220, 30, 30), 'blue': (30, 30, 220), 'green': (30, 180, 30), 'yellow': (230, 220, 20)}
    for i in range(k % 3 + 1):
        d.ellipse([3 + 12 * i, 10, 13 + 12 * i, 20], fill=c[COLOURS[k % 4]])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im.save(path, quality=70)


def dump(name, obj):
    with open(os.path.join(ROOT, name), 'w') as f:
        json.dump(obj, f, indent=1)


def vqa_answers(ans):
    return [{'answer': a, 'answer_confidence': 'yes', 'answer_id': i + 1} for i, a in enumerate(ans)]


def main():
    rng = random.Random(7)
    os.makedirs(ROOT, exist_ok=True)
    expected = {}
    # ---- VQAv2 / OK-VQA: COCO_val2014_%012d.jpg
    for k, iid in enumerate([42, 73, 1000]):
        image(os.path.join(ROOT, 'coco', 'val2014', 'COCO_val2014_%012d.jpg' % iid), k)
    for k, iid in enumerate([9, 25]):
        image(os.path.join(ROOT, 'coco', 'train2014', 'COCO_train2014_%012d.jpg' % iid), k + 1)
    qs = [(42, 'Is there a circle?', ['yes'] * 9 + ['no'], 'yes/no', 'yes'),
          (42, 'How many circles are there?', ['1'] * 6 + ['one'] * 2 + ['2'] * 2, 'number', 'One'),
          (73, 'What colour is the circle?', ['blue'] * 2 + ['navy'] * 8, 'other', 'blue'),
          (1000, 'What is in the picture?', ['circles'] * 4 + ['dots'] * 6, 'other', 'the dots.'),
          (1000, 'Is it a photo?', ['no'] * 10, 'yes/no', 'No')]
    for task, ids in [('vqav2', 100), ('okvqa', 200)]:
        questions = {'info': {}, 'task_type': 'Open-Ended', 'data_type': 'mscoco', 'data_subtype': 'val2014',
                     'questions': [{'image_id': q[0], 'question': q[1], 'question_id': ids + i}
                                   for i, q in enumerate(qs)]}
        anns = {'annotations': [{'question_id': ids + i, 'image_id': q[0], 'question_type': 'what',
                                 'answer_type': q[3] if task == 'vqav2' else 'other',
                                 'multiple_choice_answer': q[2][0], 'answers': vqa_answers(q[2])}
                                for i, q in enumerate(reversed(qs))]}  # annotation order differs: joined by id
        anns['annotations'] = [dict(a, question_id=ids + len(qs) - 1 - i) for i, a in enumerate(anns['annotations'])]
        dump('%s_questions.json' % task, questions)
        dump('%s_annotations.json' % task, anns)
        train_q = {'data_subtype': 'train2014', 'questions': [
            {'image_id': 9, 'question': 'What colour is it?', 'question_id': ids + 50},
            {'image_id': 25, 'question': 'How many?', 'question_id': ids + 51}]}
        train_a = {'annotations': [{'question_id': ids + 50, 'answers': vqa_answers(['red'] * 10)},
                                   {'question_id': ids + 51, 'answers': vqa_answers(['2'] * 10)}]}
        dump('%s_train_questions.json' % task, train_q)
        dump('%s_train_annotations.json' % task, train_a)
        preds = [{'question_id': ids + i, 'answer': q[4]} for i, q in enumerate(qs)]
        dump('%s_predictions.json' % task, preds)
        accs = [M.vqa_accuracy(q[4], q[2]) for q in qs]
        types = {}
        for q, a in zip(qs, accs):
            t = q[3] if task == 'vqav2' else 'other'
            types.setdefault(t, []).append(a)
        expected[task] = {'accuracy': 100 * sum(accs) / len(accs),
                          'per_answer_type': {t: 100 * sum(v) / len(v) for t, v in types.items()}}
    # ---- TextVQA: <image_id>.jpg
    tq = [('a1b2c3', 'What does the sign say?', ['stop'] * 7 + ['stop sign'] * 3, 'Stop'),
          ('d4e5f6', 'What number is shown?', ['12'] * 5 + ['twelve'] * 5, '12'),
          ('d4e5f6', 'What brand is it?', ['acme'] * 2 + ['acme co'] * 8, 'acme')]
    for k, iid in enumerate(['a1b2c3', 'd4e5f6']):
        image(os.path.join(ROOT, 'textvqa', iid + '.jpg'), k + 2)
    dump('textvqa_val.json', {'dataset_type': 'val', 'dataset_name': 'textvqa', 'dataset_version': '0.5.1',
                              'data': [{'question': q[1], 'image_id': q[0], 'image_classes': [], 'question_id': 300 + i,
                                        'answers': q[2], 'question_tokens': q[1].split(), 'set_name': 'val'}
                                       for i, q in enumerate(tq)]})
    dump('textvqa_predictions.json', [{'question_id': 300 + i, 'answer': q[3]} for i, q in enumerate(tq)])
    accs = [M.vqa_accuracy(q[3], q[2], 'textvqa') for q in tq]  # TextVQA's own evaluator
    expected['textvqa'] = {'accuracy': 100 * sum(accs) / len(accs)}
    # ---- VizWiz: list, image names
    vq = [('VizWiz_val_00000000.jpg', 'What is this?', ['unanswerable'] * 6 + ['circle'] * 4, 'unanswerable', 'unanswerable'),
          ('VizWiz_val_00000001.jpg', 'What colour is this?', ['green'] * 10, 'other', 'Green'),
          ('VizWiz_val_00000002.jpg', 'Is it dark?', ['no'] * 8 + ['yes'] * 2, 'yes/no', 'no')]
    for k, q in enumerate(vq):
        image(os.path.join(ROOT, 'vizwiz', q[0]), k)
    dump('vizwiz_val.json', [{'image': q[0], 'question': q[1], 'answer_type': q[3], 'answerable': int(q[3] != 'unanswerable'),
                              'answers': [{'answer': a, 'answer_confidence': 'yes'} for a in q[2]]} for q in vq])
    dump('vizwiz_predictions.json', [{'image': q[0], 'answer': q[4]} for q in vq])
    accs = [M.vqa_accuracy(q[4], q[2], 'vizwiz') for q in vq]  # the VizWiz API's rule
    types = {}
    for q, a in zip(vq, accs):
        types.setdefault(q[3], []).append(a)
    expected['vizwiz'] = {'accuracy': 100 * sum(accs) / len(accs),
                          'per_answer_type': {t: 100 * sum(v) / len(v) for t, v in types.items()}}
    # ---- COCO (Karpathy + captions_val2014) and Flickr30K (Karpathy)
    words = ['a', 'red', 'blue', 'circle', 'circles', 'two', 'three', 'on', 'white', 'background', 'small', 'dots']

    def cap():
        return ' '.join(rng.choice(words) for _ in range(rng.randint(3, 8))).capitalize() + '.'

    coco_test = [(42, 'val2014'), (73, 'val2014'), (1000, 'val2014')]
    coco_train = [(9, 'train2014'), (25, 'train2014')]
    refs = {iid: [cap() for _ in range(5)] for iid, _ in coco_test + coco_train}
    karpathy = {'dataset': 'coco', 'images': [
        {'filepath': fp, 'filename': 'COCO_%s_%012d.jpg' % (fp, iid), 'imgid': n, 'split': 'test' if fp == 'val2014' else 'train',
         'cocoid': iid, 'sentids': [], 'sentences': [{'raw': r, 'tokens': r.lower().strip('.').split(), 'imgid': n,
                                                       'sentid': 0} for r in refs[iid]]}
        for n, (iid, fp) in enumerate(coco_test + coco_train)]}
    dump('dataset_coco.json', karpathy)
    dump('captions_val2014.json', {'info': {}, 'licenses': [], 'type': 'captions',
                                   'images': [{'id': iid, 'file_name': 'COCO_val2014_%012d.jpg' % iid} for iid, _ in coco_test],
                                   'annotations': [{'image_id': iid, 'id': 10 * iid + j, 'caption': r}
                                                   for iid, _ in coco_test for j, r in enumerate(refs[iid])]})
    coco_pred = {iid: rng.choice([cap(), refs[iid][0]]) for iid, _ in coco_test}
    dump('coco_predictions.json', [{'image_id': iid, 'caption': coco_pred[iid]} for iid, _ in coco_test])

    def cap_scores(preds, refsets):
        c = [M.ptb_tokenize(p) for p in preds]
        r = [[M.ptb_tokenize(x) for x in rs] for rs in refsets]
        cider, _ = M.cider_d(c, r)
        return {'cider': 100 * cider, 'bleu': [100 * b for b in M.bleu(c, r)]}

    expected['coco'] = cap_scores([coco_pred[i] for i, _ in coco_test], [refs[i] for i, _ in coco_test])
    fl = ['1000092795.jpg', '10002456.jpg', '1000268201.jpg', '1000344755.jpg']
    frefs = {f: [cap() for _ in range(5)] for f in fl}
    for k, f in enumerate(fl):
        image(os.path.join(ROOT, 'flickr30k', f), k)
    dump('dataset_flickr30k.json', {'dataset': 'flickr30k', 'images': [
        {'filename': f, 'imgid': n, 'split': 'test' if n < 3 else 'train', 'sentids': [],
         'sentences': [{'raw': r, 'tokens': [], 'imgid': n, 'sentid': j} for j, r in enumerate(frefs[f])]}
        for n, f in enumerate(fl)]})
    fpred = {f: rng.choice([cap(), frefs[f][1]]) for f in fl[:3]}
    dump('flickr30k_predictions.json', [{'image_id': f.split('.')[0], 'caption': fpred[f]} for f in fl[:3]])
    expected['flickr30k'] = cap_scores([fpred[f] for f in fl[:3]], [frefs[f] for f in fl[:3]])
    dump('expected.json', expected)
    print('wrote', os.path.normpath(ROOT), json.dumps(expected))


if __name__ == '__main__':
    main()
