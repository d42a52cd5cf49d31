from django.urls import path

from apps.procurement import views

app_name = "procurement"

urlpatterns = [
    path("", views.tender_list, name="tender-list"),
    path("tenders/new/", views.tender_create, name="tender-create"),
    path("tenders/<int:pk>/", views.tender_detail, name="tender-detail"),
    path("tenders/<int:pk>/evaluate/", views.tender_evaluate, name="tender-evaluate"),
    path("tenders/<int:pk>/delete/", views.tender_delete, name="tender-delete"),
    path("evaluations/<int:pk>/", views.evaluation_detail, name="evaluation-detail"),
    path("evaluations/<int:pk>/report/", views.evaluation_report, name="evaluation-report"),
    path("evaluations/<int:pk>/report.csv", views.evaluation_csv, name="evaluation-csv"),
    path("evaluations/<int:pk>/charts/<slug:name>.svg", views.evaluation_chart, name="evaluation-chart"),
    path("registry/", views.registry, name="registry"),
    path("chips/", views.classification_list, name="classification-list"),
    path("chips/<int:pk>/classification/", views.chip_classification, name="chip-classification"),
]
